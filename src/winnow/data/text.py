"""Words of a text, for counts and n-grams in any script.

Runs of non-space characters are words; each CJK character (Han, kana, Hangul) is a word of
its own, since these scripts do not separate words by spaces.
"""

from __future__ import annotations

import re

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_WORD = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")


def words(text: str) -> list[str]:
    """The words of ``text`` in order (see the module doc)."""
    return text.split() if text.isascii() else _WORD.findall(text)
