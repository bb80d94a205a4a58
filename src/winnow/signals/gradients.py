"""Registers the gradient signals (``gradient_features``, ``less``, ``nice``) defined in
:mod:`winnow.gradients`."""

from winnow.gradients.less import LessInfluence
from winnow.gradients.nice import NiceInfluence
from winnow.gradients.policy import PolicyGradientFeatures
from winnow.gradients.signal import GradientFeatures

__all__ = ["GradientFeatures", "LessInfluence", "NiceInfluence", "PolicyGradientFeatures"]
