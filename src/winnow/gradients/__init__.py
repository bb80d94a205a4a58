"""Gradient features and targeted selection: per-example LoRA gradients, random projections,
the gradient feature signal, LESS and NICE influence, warmup and policy gradients.

Modules: :mod:`~winnow.gradients.per_example` (gradients), :mod:`~winnow.gradients.projection`
(seeded projections), :mod:`~winnow.gradients.features` (Adam preconditioning + projection),
:mod:`~winnow.gradients.signal` (the ``gradient_features`` signal),
:mod:`~winnow.gradients.warmup` (LESS warmup), :mod:`~winnow.gradients.matching` (influence
scores), :mod:`~winnow.gradients.less` and :mod:`~winnow.gradients.nice` (the ``less`` and
``nice`` signals), :mod:`~winnow.gradients.policy` (NICE policy gradients).
"""
