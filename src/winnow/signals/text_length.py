"""Text length: characters of an example's text, a length score's raw input.

LIFT's length score (``quality_curation/generate_length_score.py``) counts the characters of
instruction + input + output with tabs and newlines removed: ``text="instruction_response",
remove="\\t\\n"`` gives exactly that count (winnow's joins are newlines, removed with them).
"""

from __future__ import annotations

import numpy as np

from winnow.data.pool import Pool
from winnow.signals.base import Columns, Signal
from winnow.signals.embeddings import TEXTS, _check, example_text


class TextLength(Signal):
    """Column ``length``: characters of each example's ``text`` (one of the embedding
    signals' texts) after removing every character of ``remove``."""

    name = "text_length"
    version = "1"
    columns = ("length",)
    shard_size = 65536

    def __init__(self, text: str = "instruction_response", remove: str = ""):
        _check(text, TEXTS, "text")
        super().__init__(text=text, remove=str(remove))

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        drop = str.maketrans("", "", self.params["remove"])
        return {"length": np.array(
            [len(example_text(c, self.params["text"]).translate(drop))
             for c in pool.conversations[start:stop]], dtype=np.float64)}
