"""Dynamic selection during training: schedule, per-run selection log, selectors, callback."""

from winnow.train.dynamic.base import DynamicSelector, SelectionState, get_dynamic_selector
from winnow.train.dynamic.callback import (
    DynamicSelectionCallback,
    PhaseSampler,
    attach_dynamic_selection,
)
from winnow.train.dynamic.log import SelectionLog
from winnow.train.dynamic.schedule import DynamicSchedule, Phase

__all__ = ["DynamicSchedule", "DynamicSelectionCallback", "DynamicSelector", "Phase",
           "PhaseSampler", "SelectionLog", "SelectionState", "attach_dynamic_selection",
           "get_dynamic_selector"]
