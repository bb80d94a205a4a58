"""Check a recipe whole before any compute: every mistake a recipe can hold (an unknown
key, parameter or option, an unfilled placeholder, a column nothing produces, a missing
target) fails here, naming the recipe file and the key, before a model is loaded."""

from __future__ import annotations

import re
from typing import Any

from winnow.data.pool import Pool
from winnow.recipes.budget import parse_budget
from winnow.recipes.context import ARTIFACT_REF, TARGET_PREFIX
from winnow.recipes.expressions import column_names
from winnow.recipes.recipe import Recipe, load_recipe
from winnow.registry import ARTIFACTS, SELECTORS, SIGNALS, STAGES, accepted_params, check_params

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
SIGNAL_KEYS = ("signal", "prefix", "scope")


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the file and the key."""


def validate(recipe: Recipe, *, pool: Pool | None = None, has_target: bool = False) -> None:
    """Raise :class:`RecipeError` for the first problem of ``recipe`` (parameters already
    applied). ``pool``: checks that every column a stage reads exists (from a signal, an
    earlier stage or the pool's own fields)."""
    where = recipe.path or recipe.name

    def fail(key: str, message: str) -> None:
        raise RecipeError(f"recipe {where}: {key}: {message}")

    _placeholders(recipe, fail)
    _artifacts(recipe, fail)
    columns = _signals(recipe, has_target, fail)
    if pool is not None:
        columns |= {name for name in pool.extra}
    if not recipe.stages:
        fail("stages", "no stages")
    for k, spec in enumerate(recipe.stages):
        key = f"stages[{k}]"
        try:
            kind = _kind(spec)
        except ValueError as e:
            fail(key, str(e))
        fn = STAGES.get(kind)
        _stage(recipe, spec, kind, fn, key, has_target, pool, fail)
        if columns is not None:
            for col in _reads(spec, kind):
                if col.startswith(TARGET_PREFIX):
                    if not has_target:
                        fail(key, f"column {col!r} needs a target set (--target FILE)")
                elif col not in columns:
                    fail(key, f"no signal, earlier stage or pool field gives column {col!r}; "
                              f"available: {', '.join(sorted(columns)) or 'none'}")
            columns |= set(getattr(fn, "columns", ())) | set(getattr(fn, "adds", tuple)(spec))
        if k == len(recipe.stages) - 1 and not fn.chooses:
            fail(key, f"the last stage ({kind}) must choose; end with one of "
                      f"{', '.join(n for n in STAGES.names() if STAGES.get(n).chooses)}")


def _kind(spec: Any) -> str:
    from winnow.recipes.stages import kind_of

    return kind_of(spec)


def _walk(obj: Any, key: str):
    """(key path, string) for every string inside ``obj``."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, f"{key}.{k}" if key else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{key}[{i}]")
    elif isinstance(obj, str):
        yield key, obj


def _placeholders(recipe: Recipe, fail) -> None:
    for section in ("artifacts", "signals", "stages"):
        for key, text in _walk(getattr(recipe, section), section):
            if key.endswith("prompt"):
                continue  # prompts keep their own {fields}
            match = _PLACEHOLDER.search(text)
            if match:
                fail(key, f"placeholder {{{match.group(1)}}} is not a parameter of the "
                          f"recipe; parameters: {', '.join(sorted(recipe.params)) or 'none'}")
    for key, text in _walk({"signals": recipe.signals, "stages": recipe.stages,
                            "artifacts": recipe.artifacts}, ""):
        if text.startswith(ARTIFACT_REF) and " " not in text:
            name = text[len(ARTIFACT_REF):].partition(".")[0]
            if name not in recipe.artifacts:
                fail(key, f"{text!r} names no artifact of the recipe; artifacts: "
                          f"{', '.join(recipe.artifacts) or 'none'}")


def _artifacts(recipe: Recipe, fail) -> None:
    for name, spec in recipe.artifacts.items():
        key = f"artifacts.{name}"
        if not isinstance(spec, dict) or "kind" not in spec:
            fail(key, "an artifact is a mapping with a 'kind'")
        if spec["kind"] not in ARTIFACTS:
            fail(f"{key}.kind", ARTIFACTS.unknown(spec["kind"]))
        fn = ARTIFACTS.get(spec["kind"])
        forwards_to = getattr(fn, "forwards_to", None)  # where its **params go
        accepted = accepted_params(forwards_to() if forwards_to else fn) - {
            "ctx", "name", "pool", "store"}
        for option in spec:
            if option != "kind" and option not in accepted:
                fail(f"{key}.{option}", f"artifact kind {spec['kind']!r} takes "
                                        f"{', '.join(sorted(accepted))}")


def _signals(recipe: Recipe, has_target: bool, fail) -> set[str] | None:
    """Columns the recipe's signals declare (None when one of them cannot say)."""
    columns: set[str] | None = set()
    for instance, spec in recipe.signals.items():
        key = f"signals.{instance}"
        name = spec.get("signal", instance)
        params = {k: v for k, v in spec.items() if k not in SIGNAL_KEYS}
        cls = _entry(SIGNALS, name, params, key, "signal", fail)
        if getattr(cls, "uses_target", False) and not has_target:
            fail(key, f"signal {name!r} needs a target set (--target FILE)")
        if spec.get("scope", "pool") not in ("pool", "candidates"):
            fail(f"{key}.scope", "scope is pool or candidates")
        produced = cls.output_columns(params)
        if not produced:
            columns = None
        elif columns is not None:
            prefix = spec.get("prefix")
            columns |= {f"{prefix}_{c}" if prefix else c for c in produced}
    return columns


def _entry(registry, name: str, params: dict[str, Any], key: str, field: str, fail):
    """The class registered as ``name`` once ``params`` are known to be its own; else
    ``fail`` at ``<key>.<field>`` (unknown name) or ``<key>.<parameter>``."""
    if name not in registry:
        fail(f"{key}.{field}", registry.unknown(name))
    cls = registry.get(name)
    try:
        check_params(registry, name, params)
    except ValueError as e:
        fail(f"{key}.{_first_unknown(cls, params)}", str(e))
    return cls


def _first_unknown(cls, params: dict[str, Any]) -> str:
    accepted = accepted_params(cls) or set()
    return next((k for k in params if k not in accepted), "")


def _stage(recipe: Recipe, spec: dict[str, Any], kind: str, fn, key: str, has_target: bool,
           pool: Pool | None, fail) -> None:
    if "keep" in spec:
        try:
            parse_budget(spec["keep"], len(pool) if pool is not None else 10**9)
        except ValueError as e:
            fail(f"{key}.keep", str(e))
    try:
        if kind == "select":
            _select(spec, key, fail)
        elif kind == "recipe":
            sub = load_recipe(str(spec["recipe"])).with_params(spec.get("params"))
            validate(sub, pool=pool, has_target=has_target)
        elif hasattr(fn, "check"):
            fn.check(spec)
    except RecipeError:
        raise
    except (KeyError, ValueError) as e:
        fail(key, str(e.args[0]) if e.args else str(e))
    if fn.options is not None:
        extra = sorted(set(spec) - {kind, *fn.options})
        if extra:
            fail(f"{key}.{extra[0]}", f"stage {kind} takes {', '.join(fn.options) or 'no'} "
                                      "options beside its own key")


def _select(spec: dict[str, Any], key: str, fail) -> None:
    from winnow.recipes.stages import SELECT_KEYS

    name = spec["select"]
    params = {k: v for k, v in spec.items() if k not in SELECT_KEYS}
    cls = _entry(SELECTORS, name, params, key, "select", fail)
    inputs = {k for k, v in (spec.get("inputs") or {}).items() if v is not None}
    declared = set(getattr(cls, "inputs", ()))
    if declared and inputs - declared:
        raise ValueError(f"selector {name!r} has no input {sorted(inputs - declared)[0]!r}; "
                         f"its inputs are {', '.join(sorted(declared))}")
    missing = set(getattr(cls, "required_inputs", ())) - inputs
    if missing:
        raise ValueError(f"selector {name!r} needs input {sorted(missing)[0]!r} in 'inputs'")


def _reads(spec: dict[str, Any], kind: str) -> set[str]:
    """Columns a stage reads (other kinds say so by a ``reads(spec)`` of their own)."""
    arg = spec[kind]
    if kind in ("filter", "top", "bottom", "rank"):
        return column_names(str(arg))
    if kind == "assign":
        reads: set[str] = set()
        names = list(arg)
        for k, expression in enumerate(arg.values()):
            reads |= column_names(str(expression)) - set(names[:k])
        return reads
    if kind == "band":
        return column_names(str(arg["by"]))
    if kind == "select":
        return {v for v in (spec.get("inputs") or {}).values() if v is not None}
    if kind == "dedup":
        out = set()
        prefer = str(spec.get("prefer", ""))
        if prefer.startswith(("highest:", "lowest:")):
            out.add(prefer.partition(":")[2])
        if arg == "semantic":
            out.add(spec.get("embedding", "embedding"))
        return out
    return set(getattr(STAGES.get(kind), "reads", lambda _: ())(spec))
