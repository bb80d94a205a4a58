"""``winnow score``: model-scored signals of every example, written as a table."""

from __future__ import annotations

from typing import Annotated

import typer

from winnow.cli.common import (
    CacheOpt,
    ColumnsOpt,
    DataOpt,
    DatasetOpt,
    ExecutorOpt,
    FormatOpt,
    OnErrorOpt,
    WorkersOpt,
    console,
    fail,
    load,
    shard_executor,
)
from winnow.data.errors import DataError

SCORE_GROUPS = {
    "loss": ["loss", "response_tokens"],
    "ppl": ["ppl"],
    "ifd": ["ifd", "loss_alone", "ppl_alone"],
    "uncertainty": ["entropy", "least_confidence", "mean_margin", "min_margin"],
}


def score_cmd(
    signals: Annotated[list[str], typer.Argument(help="loss ppl ifd uncertainty "
                                                 "instruction_ppl")],
    data: DataOpt,
    out_path: Annotated[str, typer.Option("--out", "-o", help="Scores file "
                                          "(.parquet/.jsonl/.json/.csv).")],
    model: Annotated[str, typer.Option(help="Causal LM: HF id or path.")] = "default",
    template: Annotated[str, typer.Option(help="alpaca | vicuna | chat | plain.")] = "alpaca",
    max_length: Annotated[int, typer.Option(help="Max tokens per example.")] = 512,
    ifd_mode: Annotated[str, typer.Option("--ifd", help="cherry | superfilter.")] = "cherry",
    dtype: Annotated[str, typer.Option(help="auto | bf16 | fp32 | fp16.")] = "auto",
    format: FormatOpt = None,
    columns: ColumnsOpt = None,
    dataset: DatasetOpt = None,
    on_error: OnErrorOpt = "raise",
    cache_dir: CacheOpt = None,
    executor: ExecutorOpt = "local",
    workers: WorkersOpt = 2,
) -> None:
    """Compute model-scored signals for every example and write them as a table."""
    from winnow.recipes.outputs import write_table
    from winnow.registry import get_signal
    from winnow.store import Store

    wanted = []
    for name in signals:
        if name not in SCORE_GROUPS and name != "instruction_ppl":
            fail(f"unknown score {name!r}; choose from "
                 f"{', '.join([*SCORE_GROUPS, 'instruction_ppl'])}")
    try:
        pool = load(data, format, dataset, on_error, columns)
        store = Store(cache_dir) if cache_dir else Store()
        shards = shard_executor(executor, workers)
        common = {"model": model, "template": template, "max_length": max_length,
                  "dtype": dtype}
        table: dict[str, list] = {"id": list(pool.ids)}
        lm_names = [s for s in signals if s in SCORE_GROUPS]
        if lm_names:
            cols = get_signal("lm_scores", **common, ifd=ifd_mode)(pool, store, run_shards=shards)
            for name in lm_names:
                wanted += SCORE_GROUPS[name]
            for c in dict.fromkeys(wanted):
                table[c] = [v.item() for v in cols[c]]
        if "instruction_ppl" in signals:
            cols = get_signal("instruction_ppl", **common)(pool, store, run_shards=shards)
            table["instruction_ppl"] = [v.item() for v in cols["instruction_ppl"]]
        write_table(table, out_path)
    except DataError as e:
        fail(str(e))
    except (KeyError, ValueError) as e:
        fail(e.args[0] if e.args else str(e))
    console.print(f"wrote {len(pool)} rows × {len(table) - 1} scores to {out_path}")
