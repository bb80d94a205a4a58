"""Recipes (YAML method definitions) and the runner of their stages."""

from winnow.recipes import dedup_stage  # noqa: F401  (registers the ``dedup`` stage kind)
