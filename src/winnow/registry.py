"""One registry of everything a recipe can name: methods, signals, selectors, stage kinds,
artifact kinds and dynamic selectors.

Entries are lazy ``"module:attr"`` strings (nothing is imported until a name is used), in the
spirit of lm-evaluation-harness; a recipe may also name a class by its ``"module:attr"``
path directly. User-facing names take hyphens or underscores alike
(``facility-location`` = ``facility_location``); two entries whose names differ only so, or
a second entry under a taken name, are an error. Add your own with, e.g.::

    from winnow.registry import SELECTORS
    SELECTORS.register("my-selector", "my_package.selectors:MySelector")
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Any


def _is_path(name: str) -> bool:
    """Whether ``name`` is a ``"package.module:attr"`` reference."""
    module, colon, attr = name.partition(":")
    return bool(colon and module and attr.isidentifier()
                and all(p.isidentifier() for p in module.split(".")))


def canonical(name: str) -> str:
    """The form names are compared in: lower case, hyphens for underscores."""
    return str(name).strip().lower().replace("_", "-")


class Registry:
    """Names of one kind (``kind``: "signal", "selector", ...) → lazy targets.

    A target is a ``"module:attr"`` string (imported on first :meth:`get`) or any object
    (returned as is).
    """

    def __init__(self, kind: str, entries: dict[str, Any] | None = None):
        self.kind = kind
        self._entries: dict[str, tuple[str, Any]] = {}
        for name, target in (entries or {}).items():
            self.register(name, target)

    def register(self, name: str, target: Any, *, replace: bool = False) -> None:
        """Add ``name`` → ``target``; an error if the name (in any spelling) is taken by
        another target, unless ``replace``."""
        key = canonical(name)
        old = self._entries.get(key)
        if old is not None and old[1] != target and not replace:
            raise ValueError(f"{self.kind} name {name!r} is already registered as {old[0]!r} "
                             f"({old[1]!r}); pick another name or pass replace=True")
        self._entries[key] = (name, target)

    def get(self, name: str) -> Any:
        """The target registered as ``name`` (imported if lazy), or the object a
        ``"module:attr"`` name points at; KeyError naming the known names if neither."""
        key = canonical(name)
        if key not in self._entries:
            if _is_path(name):
                return self._import(name, name)
            raise KeyError(self.unknown(name))
        display, target = self._entries[key]
        if isinstance(target, str) and _is_path(target):
            target = self._import(display, target)
            self._entries[key] = (display, target)
        return target

    def _import(self, display: str, path: str) -> Any:
        module, _, attr = path.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise KeyError(f"{self.kind} {display!r}: cannot import {path!r} ({e})") from None

    def unknown(self, name: str) -> str:
        """The message for an unknown ``name``: the closest names, then all of them."""
        close = difflib.get_close_matches(canonical(name), list(self._entries), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return f"unknown {self.kind} {name!r}{hint}; known: {', '.join(self.names())}"

    def names(self) -> list[str]:
        """Registered names in canonical form, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (canonical(name) in self._entries or _is_path(name))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


SIGNALS = Registry("signal", {
    "lm_scores": "winnow.signals.lm_scores:LMScores",
    "instruction_ppl": "winnow.signals.lm_scores:InstructionPPL",
    "embedding": "winnow.signals.embeddings:Embedding",
    "lm_embedding": "winnow.signals.embeddings:LMEmbedding",
    "text_length": "winnow.signals.text_length:TextLength",
    "language": "winnow.signals.language:Language",
    "gopher_repetition": "winnow.signals.gopher:GopherRepetition",
    "gopher_quality": "winnow.signals.gopher:GopherQuality",
    "gradient_features": "winnow.signals.gradients:GradientFeatures",
    "policy_gradient_features": "winnow.signals.gradients:PolicyGradientFeatures",
    "less": "winnow.signals.gradients:LessInfluence",
    "nice": "winnow.signals.gradients:NiceInfluence",
    "judge": "winnow.signals.judge:Judge",
    "prompt_uncertainty": "winnow.signals.prompt_uncertainty:PromptUncertainty",
    "nuggets": "winnow.signals.nuggets:Nuggets",
    "mtld": "winnow.signals.lexical:MTLD",
    "knn_distance": "winnow.signals.neighbours:KnnDistance",
    "data_whisperer": "winnow.signals.data_whisperer:DataWhisperer",
})

SELECTORS = Registry("selector", {
    "top": "winnow.selectors.ranking:TopK",
    "bottom": "winnow.selectors.ranking:BottomK",
    "threshold": "winnow.selectors.ranking:Threshold",
    "band": "winnow.selectors.ranking:QuantileBand",
    "random": "winnow.selectors.ranking:RandomSample",
    "kcenter": "winnow.selectors.kcenter:KCenterGreedy",
    "kmeans": "winnow.selectors.kmeans:KMeansSampler",
    "facility-location": "winnow.selectors.facility_location:FacilityLocation",
    "novelselect": "winnow.selectors.novelsum:NovelSelect",
    "deita": "winnow.selectors.deita:DeitaFilter",
    "dq": "winnow.selectors.dq:DatasetQuantization",
    "qdit": "winnow.selectors.qdit:QDIT",
    "g2is": "winnow.selectors.g2is:G2IS",
    "cluster-ucb": "winnow.selectors.cluster_ucb:ClusterUCB",
    "tsds": "winnow.selectors.tsds:TSDS",
    "near": "winnow.selectors.tsds:NEAR",
    "lift-variety": "winnow.selectors.lift:LiftVariety",
    "instag": "winnow.selectors.instag:InsTagSampler",
    "mig": "winnow.selectors.mig:MIG",
    "quota": "winnow.selectors.quota:Quota",
    "linear-rule": "winnow.selectors.learned:LinearRule",
    "stratified-lowest": "winnow.selectors.learned:StratifiedLowest",
})

STAGES = Registry("stage kind", {
    "filter": "winnow.recipes.stages:filter_stage",
    "assign": "winnow.recipes.stages:assign_stage",
    "top": "winnow.recipes.stages:top_stage",
    "bottom": "winnow.recipes.stages:bottom_stage",
    "rank": "winnow.recipes.stages:rank_stage",
    "band": "winnow.recipes.stages:band_stage",
    "random": "winnow.recipes.stages:random_stage",
    "select": "winnow.recipes.stages:select_stage",
    "dedup": "winnow.recipes.dedup_stage:dedup_stage",
    "decontaminate": "winnow.recipes.decontaminate_stage:decontaminate_stage",
    "recipe": "winnow.recipes.stages:recipe_stage",
    "small2large": "winnow.recipes.methods:small2large_stage",
    "diverse-evol": "winnow.recipes.methods:diverse_evol_stage",
    "mods": "winnow.recipes.methods:mods_stage",
    "instag-tags": "winnow.recipes.tagging:instag_tags_stage",
    "mig": "winnow.recipes.tagging:mig_stage",
    "linear-rule": "winnow.recipes.learned:linear_rule_stage",
    "instructiongpt4": "winnow.recipes.learned:instructiongpt4_stage",
})

ARTIFACTS = Registry("artifact kind", {
    "lora-warmup": "winnow.recipes.artifacts:lora_warmup",
    "trained-model": "winnow.recipes.artifacts:trained_model",
})

DYNAMIC_SELECTORS = Registry("dynamic selector", {
    "random": "winnow.train.dynamic.builtin:RandomDynamic",
    "loss": "winnow.train.dynamic.builtin:LossDynamic",
    "delta_loss": "winnow.train.dynamic.builtin:DeltaLossDynamic",
    "less": "winnow.train.dynamic.gradients:LessDynamic",
    "nice": "winnow.train.dynamic.gradients:NiceDynamic",
    "cluster_ucb": "winnow.train.dynamic.gradients:ClusterUCBDynamic",
    "recipe": "winnow.recipes.dynamic:RecipeDynamic",
})

# Methods are the recipe files shipped in ``winnow/recipes/builtin`` (registered by
# ``winnow.recipes.recipe`` on first use); register a path to add your own.
METHODS = Registry("method")


def accepted_params(cls: Any) -> set[str] | None:
    """Keyword parameters ``cls(...)`` accepts, following ``**kwargs`` that an
    ``__init__`` hands to its base class (None: any keyword at all)."""
    import inspect

    if not isinstance(cls, type):
        return _named(inspect.signature(cls))
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        sig = inspect.signature(init)
        named = _named(sig) - {"self"}
        if named is not None:
            names |= named
        forwards = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        if not forwards:
            return names
        if not named:  # a base that only gathers **params (e.g. Signal): the end of the chain
            return names
    return names


def _named(sig) -> set[str]:
    return {p.name for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_params(registry: Registry, name: str, params: dict[str, Any]) -> None:
    """ValueError naming the first parameter that the entry ``name`` does not take."""
    cls = registry.get(name)
    accepted = accepted_params(cls)
    if accepted is None:
        return
    unknown = sorted(set(params) - accepted)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(accepted), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{registry.kind} {name!r} has no parameter {unknown[0]!r}{hint}; "
                         f"it takes {', '.join(sorted(accepted)) or 'none'}")


def create(registry: Registry, name: str, **params: Any) -> Any:
    """An instance of the entry ``name`` with ``params`` (checked first, see
    :func:`check_params`)."""
    check_params(registry, name, params)
    return registry.get(name)(**params)


def get_selector(name: str, **params: Any) -> Any:
    """A selector by name (``SELECTORS``) with its parameters."""
    return create(SELECTORS, name, **params)


def get_signal(name: str, **params: Any) -> Any:
    """A signal by name (``SIGNALS``) with its parameters."""
    return create(SIGNALS, name, **params)
