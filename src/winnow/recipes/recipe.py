"""Recipes: one paper method as data (YAML shipped in ``recipes/builtin``).

A recipe has a name, a one-line summary, its paper and official repository, parameters
(overridable with ``--set key=value``), signal instances and a list of stages. ``"{param}"``
anywhere in signals or stages is replaced by the parameter's value (a string that is
exactly ``"{param}"`` takes the value with its type).

``include: <recipe>`` (a built-in name, or a .yaml path relative to the including file)
makes another recipe the base: the including file's keys replace the base's, and its
``params`` are merged into the base's (a preset changes a few defaults and repeats nothing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Recipe:
    name: str
    summary: str = ""
    paper: str = ""
    repo: str = ""
    notes: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    signals: dict[str, dict[str, Any]] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)
    path: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str = "") -> Recipe:
        known = {"name", "summary", "paper", "repo", "notes", "params", "signals", "stages"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"recipe {path or d.get('name')}: unknown keys {sorted(unknown)}; "
                             f"a recipe has {sorted(known)}")
        if not d.get("stages"):
            raise ValueError(f"recipe {path or d.get('name')}: no stages")
        return cls(path=path, **{k: v for k, v in d.items() if k in known})

    def with_params(self, overrides: dict[str, Any] | None = None) -> Recipe:
        """A copy with parameters overridden and placeholders substituted."""
        params = {**self.params, **(overrides or {})}
        unknown = set(overrides or {}) - set(self.params)
        if unknown:
            raise ValueError(f"recipe {self.name}: unknown parameters {sorted(unknown)}; "
                             f"it takes {sorted(self.params)}")
        return Recipe(name=self.name, summary=self.summary, paper=self.paper, repo=self.repo,
                      notes=self.notes, params=params,
                      signals=_substitute(self.signals, params),
                      stages=_substitute(self.stages, params), path=self.path)


def _substitute(obj: Any, params: dict[str, Any]) -> Any:
    if isinstance(obj, dict):
        return {k: _substitute(v, params) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, params) for v in obj]
    if isinstance(obj, str):
        whole = _PLACEHOLDER.fullmatch(obj)
        if whole and whole.group(1) in params:
            return params[whole.group(1)]
        return _PLACEHOLDER.sub(
            lambda m: str(params[m.group(1)]) if m.group(1) in params else m.group(0), obj)
    return obj


def _builtin_dir():
    return resources.files("winnow.recipes") / "builtin"


def _read(entry, where: Path | None, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The mapping of the recipe file ``entry`` with its ``include:`` resolved."""
    doc = yaml.safe_load(entry.read_text())
    if not isinstance(doc, dict) or "include" not in doc:
        return doc
    ref = str(doc["include"])
    if ref in seen:
        raise ValueError(f"recipe {entry.name}: include cycle {' -> '.join([*seen, ref])}")
    local = (where / ref) if where is not None else None
    if ref.endswith((".yaml", ".yml")) and local is not None and local.is_file():
        base = _read(local, local.parent, (*seen, ref))
    elif (_builtin_dir() / f"{ref}.yaml").is_file():
        base = _read(_builtin_dir() / f"{ref}.yaml", None, (*seen, ref))
    else:
        raise KeyError(f"recipe {entry.name}: include {ref!r} is neither a built-in recipe "
                       "nor a .yaml file beside it")
    rest = {k: v for k, v in doc.items() if k != "include"}
    return {**base, **rest, "params": {**base.get("params", {}), **rest.get("params", {})}}


def list_recipes() -> list[Recipe]:
    """Every built-in recipe, sorted by name."""
    out = []
    for entry in _builtin_dir().iterdir():
        if entry.name.endswith(".yaml"):
            out.append(Recipe.from_dict(_read(entry, None), path=entry.name))
    return sorted(out, key=lambda r: r.name)


def load_recipe(name_or_path: str) -> Recipe:
    """A built-in recipe by name, or a recipe YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return Recipe.from_dict(_read(path, path.parent), path=str(path))
    entry = _builtin_dir() / f"{name_or_path}.yaml"
    if not entry.is_file():
        names = ", ".join(r.name for r in list_recipes())
        raise KeyError(f"unknown method {name_or_path!r}; built-in methods: {names} "
                       "(or give a path to a recipe .yaml)")
    return Recipe.from_dict(_read(entry, None), path=entry.name)
