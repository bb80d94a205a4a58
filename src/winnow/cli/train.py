"""``winnow train`` and ``winnow export``: LoRA fine-tuning (static or with dynamic
selection) with its loss curve, and merging an adapter into its base model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from winnow.cli.common import SetOpt, fail, parse_sets, stdout
from winnow.data.errors import DataError


def train_cmd(
    config: Annotated[Path, typer.Argument(help="Training YAML (LLaMA-Factory / DataFlex keys).")],
    sets: SetOpt = None,
) -> None:
    """LoRA SFT from a LLaMA-Factory-style YAML; `train_type: dynamic_select` selects data
    during training. A folder with checkpoints is resumed unless overwrite_output_dir."""
    from winnow.report.plots import plot_loss_curves
    from winnow.train import TrainConfig, train

    try:
        cfg = TrainConfig.from_yaml(config, parse_sets(sets))
        result = train(cfg)
    except (DataError, ValueError, KeyError, FileNotFoundError, RuntimeError) as e:
        fail(str(e))
    plot = plot_loss_curves(result.log_history, result.output_dir / "loss.png",
                            marks=[s["step"] for s in result.selections if s["kind"] == "update"])
    stdout.print(f"trained {result.global_step} steps, train loss {result.train_loss:.4f}, "
                 f"{result.seconds:.0f}s → {result.output_dir} (loss curve {plot.name})")
    for record in result.selections:
        stdout.print(f"  step {record['step']:>6}: {record['kind']:<6} {record['selector']:<10}"
                     f" {len(record['indices'])} examples")


def export_cmd(
    adapter: Annotated[Path, typer.Option(help="LoRA adapter folder (a run or checkpoint).")],
    out: Annotated[Path, typer.Option(help="Folder for the merged model.")],
    base: Annotated[str | None, typer.Option(
        help="Base model (default: the one named in the adapter config).")] = None,
    dtype: Annotated[str, typer.Option(help="fp32 | bf16 | fp16 weights.")] = "fp32",
) -> None:
    """Merge a LoRA adapter into its base model and save safetensors loadable by
    transformers."""
    from winnow.train.export import export_merged

    try:
        path = export_merged(adapter, out, base=base, dtype=dtype)
    except (FileNotFoundError, ValueError, KeyError) as e:
        fail(str(e))
    stdout.print(f"merged model → {path}")
