"""Recipes: one paper method as data (YAML shipped in ``recipes/builtin``).

A recipe has a name, a one-line summary, its paper and official repository, parameters
(overridable with ``--set key=value``; a mapping parameter such as ``train`` takes
``--set train.learning_rate=1e-4``), artifacts (models it trains once, see
:mod:`winnow.recipes.artifacts`), signal instances and a list of stages. ``"{param}"``
anywhere in artifacts, signals or stages is replaced by the parameter's value (a string
that is exactly ``"{param}"`` takes the value with its type).

``include: <recipe>`` (a built-in name, or a .yaml path relative to the including file)
makes another recipe the base: the including file's keys replace the base's, and its
``params`` are merged into the base's (a preset changes a few defaults and repeats nothing).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from winnow.registry import METHODS

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Recipe:
    name: str
    summary: str = ""
    paper: str = ""
    repo: str = ""
    notes: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    signals: dict[str, dict[str, Any]] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)
    path: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str = "") -> Recipe:
        if not isinstance(d, dict):
            raise ValueError(f"recipe {path}: not a YAML mapping")
        known = {"name", "summary", "paper", "repo", "notes", "params", "artifacts",
                 "signals", "stages"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"recipe {path or d.get('name')}: unknown keys {sorted(unknown)}; "
                             f"a recipe has {sorted(known)}")
        if not d.get("stages"):
            raise ValueError(f"recipe {path or d.get('name')}: no stages")
        return cls(path=path, **{k: v for k, v in d.items() if k in known})

    @property
    def needs_budget(self) -> bool:
        """Whether a budget decides the subset's size: the last stage keeps no fixed
        amount of its own (AlpaGasus keeps every example over a threshold: no budget)."""
        return "keep" not in self.stages[-1]

    def with_params(self, overrides: dict[str, Any] | None = None) -> Recipe:
        """A copy with parameters overridden and placeholders substituted. A mapping
        parameter is updated key by key (``{"train": {...}}`` or ``"train.key"``)."""
        params = dict(self.params)
        unknown = sorted({k.partition(".")[0] for k in overrides or {}} - set(self.params))
        if unknown:
            raise ValueError(f"recipe {self.path or self.name}: params: unknown parameters "
                             f"{unknown}; it takes {sorted(self.params)}")
        for key, value in (overrides or {}).items():
            head, dot, sub = key.partition(".")
            if dot or isinstance(value, dict) and isinstance(params[head], dict):
                if not isinstance(params[head], dict):
                    raise ValueError(f"recipe {self.path or self.name}: params: {head!r} is "
                                     f"not a mapping, so {key!r} cannot be set")
                params[head] = {**params[head], **({sub: value} if dot else value)}
            else:
                params[head] = value
        return Recipe(name=self.name, summary=self.summary, paper=self.paper, repo=self.repo,
                      notes=self.notes, params=params,
                      artifacts=_substitute(self.artifacts, params),
                      signals=_substitute(self.signals, params),
                      stages=_substitute(self.stages, params), path=self.path)

    def walk(self) -> Iterator[Recipe]:
        """This recipe, then each recipe its ``recipe`` stages run (with their params),
        depth first."""
        yield self
        for spec in self.stages:
            if "recipe" in spec:
                yield from load_recipe(spec["recipe"]).with_params(spec.get("params")).walk()


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


def _register_builtins() -> None:
    """Enter every built-in recipe file in :data:`winnow.registry.METHODS` (once)."""
    if getattr(_register_builtins, "done", False):
        return
    for entry in sorted(_builtin_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            METHODS.register(entry.name[:-len(".yaml")], entry)
    _register_builtins.done = True


def list_recipes() -> list[Recipe]:
    """Every registered method's recipe, sorted by name."""
    _register_builtins()
    return sorted((load_recipe(name) for name in METHODS.names()), key=lambda r: r.name)


def load_recipe(name_or_path: str) -> Recipe:
    """A method by name (built-in or registered; hyphens and underscores alike), or a
    recipe YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return Recipe.from_dict(_read(path, path.parent), path=str(path))
    _register_builtins()
    if name_or_path not in METHODS:
        raise KeyError(METHODS.unknown(name_or_path) + " (or give a path to a recipe .yaml)")
    entry = METHODS.get(name_or_path)
    if str(entry) == str(_builtin_dir() / entry.name):
        return Recipe.from_dict(_read(entry, None), path=entry.name)
    entry = Path(entry)
    return Recipe.from_dict(_read(entry, entry.parent), path=str(entry))
