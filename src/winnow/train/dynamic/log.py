"""The selections of one dynamic run, kept inside the run's output folder.

Layout under ``<output_dir>/dynamic``::

    run.json                    the run's id and what defines it (pool, schedule, selector)
    selections/step_00000010.json   one record per phase: indices in training order + metrics

A fresh run in a folder that holds another run's selections removes them. A resumed run
(trainer state restored from a checkpoint at step s) must match ``run.json`` and keeps only
the records of phases that started at or before s: selections are never taken from another
run, and a selection made after the checkpoint is made again by the resumed run.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from winnow.store import atomic_write


def _write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda f: json.dump(obj, f), mode="w")


class SelectionLog:
    """Per-(run, step) selection records under ``root`` (``<output_dir>/dynamic``)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.run_id: str | None = None

    @property
    def selections_dir(self) -> Path:
        return self.root / "selections"

    def _path(self, step: int) -> Path:
        return self.selections_dir / f"step_{step:08d}.json"

    def open(self, identity: dict[str, Any], resume_step: int | None) -> str:
        """Start (``resume_step`` None) or resume the run defined by ``identity``; its id."""
        run_file = self.root / "run.json"
        if resume_step is None:
            shutil.rmtree(self.selections_dir, ignore_errors=True)
            self.run_id = uuid.uuid4().hex
            _write_json(run_file, {"run_id": self.run_id, "identity": identity})
            return self.run_id
        if not run_file.is_file():
            raise RuntimeError(f"cannot resume a dynamic run at step {resume_step}: "
                               f"{run_file} is missing (the checkpoint is not from a dynamic run "
                               "in this folder)")
        saved = json.loads(run_file.read_text(encoding="utf-8"))
        if saved["identity"] != _jsonable(identity):
            raise RuntimeError(f"cannot resume: {run_file} was written by a different run "
                               "(pool, schedule, batch or selector differ); use a new output_dir")
        self.run_id = saved["run_id"]
        for step in self.steps():
            if step > resume_step:
                self._path(step).unlink()
        return self.run_id

    def steps(self) -> list[int]:
        """Steps with a record, ascending."""
        if not self.selections_dir.is_dir():
            return []
        return sorted(int(p.stem.split("_")[1]) for p in self.selections_dir.glob("step_*.json"))

    def get(self, step: int) -> dict[str, Any] | None:
        """The record of the phase starting at ``step`` (None when absent)."""
        path = self._path(step)
        if not path.is_file():
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("run_id") != self.run_id:
            raise RuntimeError(f"{path} belongs to run {record.get('run_id')}, not {self.run_id}")
        return record

    def put(self, step: int, record: dict[str, Any]) -> None:
        """Write the record of the phase starting at ``step`` (atomically)."""
        _write_json(self._path(step), {**_jsonable(record), "run_id": self.run_id, "step": step})

    def all(self) -> list[dict[str, Any]]:
        return [self.get(s) for s in self.steps()]


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
