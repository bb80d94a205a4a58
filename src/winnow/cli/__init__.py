"""The ``winnow`` command line: parse, call the library, print. One module per command
group; each command's heavy imports happen when it runs."""

from __future__ import annotations

import typer

from winnow.cli import (
    demo,
    diversity,
    evaluate,
    explain,
    fit,
    plan,
    report,
    score,
    select,
    train,
)

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Select instruction-tuning data for LLMs.")
app.command("methods")(select.methods_cmd)
app.command("select")(select.select_cmd)
app.command("plan")(plan.plan_cmd)
app.command("score")(score.score_cmd)
app.command("demo")(demo.demo_cmd)
app.command("diversity")(diversity.diversity_cmd)
app.command("explain")(explain.explain_cmd)
app.command("report")(report.report_cmd)
app.command("train")(train.train_cmd)
app.command("export")(train.export_cmd)
app.command("evaluate")(evaluate.evaluate_cmd)
app.add_typer(fit.app, name="fit")
