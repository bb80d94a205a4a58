"""Registers the gradient signals (``gradient_features``, ``less``, ``nice``) defined in
:mod:`winnow.gradients`."""

from winnow.gradients.less import LessInfluence
from winnow.gradients.signal import GradientFeatures

__all__ = ["GradientFeatures", "LessInfluence"]
