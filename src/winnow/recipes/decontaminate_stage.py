"""The ``decontaminate`` stage kind: drop the candidates that share a word n-gram with a
target or evaluation file.

Recipe form (``winnow select ... --decontaminate FILE`` puts it first)::

    - decontaminate: [eval/mmlu.jsonl, eval/bbh.parquet]   # any pool format winnow reads
      ngram: 13                                           # words per n-gram
      fields: [instruction, input, response]              # parts of pool and file examples

Each dropped example's reason names the file, the file's example id and the shared n-gram.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from winnow.data import load_pool
from winnow.dedup import texts_of
from winnow.dedup.decontaminate import NGRAM, overlaps
from winnow.dedup.text import resolve_fields
from winnow.recipes.context import RunContext
from winnow.recipes.recipe import Recipe
from winnow.recipes.stages import Reason, StageResult, stage_kind


def _files(spec: dict[str, Any]) -> list[str]:
    files = spec["decontaminate"]
    files = [files] if isinstance(files, str) else files
    if not isinstance(files, list) or not files:
        raise ValueError("decontaminate takes a list of target or evaluation files")
    for f in files:
        if not Path(str(f)).exists():
            raise ValueError(f"decontaminate: no file {f}")
    return [str(f) for f in files]


def _check(spec: dict[str, Any]) -> None:
    _files(spec)
    ngram = spec.get("ngram", NGRAM)
    if not isinstance(ngram, int) or isinstance(ngram, bool) or ngram < 1:
        raise ValueError(f"decontaminate: ngram is a positive number of words, not {ngram!r}")
    resolve_fields(spec.get("fields"))


@stage_kind(chooses=False, options=("ngram", "fields"))
def decontaminate_stage(ctx: RunContext, spec, candidates, keep) -> StageResult:
    """Drop the candidates sharing an ``ngram``-word n-gram with any of the files."""
    files = _files(spec)
    ngram, fields = spec.get("ngram", NGRAM), spec.get("fields")
    references = [load_pool(f) for f in files]
    texts = texts_of((ctx.pool.conversations[i] for i in candidates), fields)
    found = overlaps(texts, [texts_of(r.conversations, fields) for r in references], ngram)
    reasons = {}
    for local, hit in found.items():
        file, other = files[hit.source], references[hit.source].ids[hit.item]
        reasons[int(candidates[local])] = Reason(
            "contaminated", {"file": file, "of": other, "ngram": hit.ngram, "n": ngram},
            f"shares a {ngram}-gram with {other} of {file}: \"{hit.ngram}\"")
    kept = np.ones(len(candidates), dtype=bool)
    kept[list(found)] = False
    trace = {"ngram": ngram, "dropped": len(found),
             "files": [{"path": f, "n": len(r), "fingerprint": r.fingerprint()}
                       for f, r in zip(files, references)]}
    return StageResult(candidates[kept], trace=trace, reasons=reasons,
                       reason=Reason("contaminated", {"files": files, "n": ngram}))


decontaminate_stage.check = _check


def with_decontamination(recipe: Recipe, files: str | list[str], ngram: int = NGRAM) -> Recipe:
    """``recipe`` with a first stage dropping the examples that share an ``ngram``-word
    n-gram with any of ``files``."""
    stage = {"decontaminate": [str(f) for f in ([files] if isinstance(files, str) else files)],
             "ngram": ngram}
    return replace(recipe, stages=[stage, *recipe.stages])
