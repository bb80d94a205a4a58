"""SFT examples as tokens: prompt tokens masked (label -100), response tokens trained.

Conversations are rendered with a :mod:`winnow.data.templates` template; every assistant
turn is a response. The token that ends a response is trained too (the chat template's
end-of-turn token, or an appended EOS for ``alpaca``/``plain``), so the model learns to
stop. Examples longer than ``cutoff_len`` lose prompt tokens from the left while the prompt
is over half the budget, then tokens from the right.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from winnow.data import load_pool
from winnow.data.errors import DataError
from winnow.data.pool import Pool, Source
from winnow.data.templates import TEMPLATES, encode_batch, get_template

IGNORE_INDEX = -100


def resolve_template(name: str | None, tokenizer: Any) -> str:
    """A winnow template name for a LLaMA-Factory ``template`` value.

    ``None``: the tokenizer's chat template when it has one, else ``alpaca``. ``empty``:
    ``plain``. Model-family names (``llama3``, ``qwen``, ...) mean the model's own chat
    format, i.e. the tokenizer's chat template.
    """
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if name is None or name == "default":
        return "chat" if has_chat else "alpaca"
    if name in TEMPLATES:
        return name
    if name == "empty":
        return "plain"
    if has_chat:
        return "chat"
    raise ValueError(f"template {name!r}: this tokenizer has no chat template; use alpaca, "
                     "plain or chat")


def encode_pool(pool: Pool, tokenizer: Any, template: str, cutoff_len: int,
                chunk: int = 256) -> list[dict[str, list[int]]]:
    """``[{"input_ids", "labels"}]`` for every example of ``pool`` (lists of ints)."""
    tpl = get_template(template)
    eos = tokenizer.eos_token_id
    out = []
    for a in range(0, len(pool), chunk):
        rendered = [tpl.render(c, tokenizer) for c in pool.conversations[a:a + chunk]]
        for k, (r, enc) in enumerate(zip(rendered, encode_batch(rendered, tokenizer))):
            ids = list(enc.input_ids)
            mask = list(enc.response_mask)
            if not enc.turns:
                raise DataError("no assistant response to train on", pool.source.path,
                                record=a + k, field="conversation")
            for _, stop in enc.turns:  # train the token that ends each response
                if stop < len(ids) and template == "chat":
                    mask[stop] = True
            if template != "chat" and r.responses[-1][1] == len(r.text) and eos is not None:
                ids.append(eos)
                mask.append(True)
            ids, mask = _fit(ids, mask, enc.turns[0][0], cutoff_len)
            out.append({"input_ids": ids,
                        "labels": [t if m else IGNORE_INDEX for t, m in zip(ids, mask)]})
    return out


def _fit(ids: list[int], mask: list[bool], prompt_len: int, cutoff: int):
    if len(ids) <= cutoff:
        return ids, mask
    drop = min(prompt_len - cutoff // 2, len(ids) - cutoff)
    if drop > 0:
        ids, mask = ids[drop:], mask[drop:]
    return ids[:cutoff], mask[:cutoff]


class SFTDataset(Dataset):
    """Item i = example i of the pool as ``{"input_ids", "labels"}`` (lists of ints)."""

    def __init__(self, items: list[dict[str, list[int]]]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.items[i]

    @classmethod
    def from_pool(cls, pool: Pool, tokenizer: Any, template: str, cutoff_len: int) -> SFTDataset:
        return cls(encode_pool(pool, tokenizer, template, cutoff_len))

    def n_trained_tokens(self) -> np.ndarray:
        """(n,) number of trained (response) tokens per example."""
        return np.array([sum(t != IGNORE_INDEX for t in x["labels"]) for x in self.items])


@dataclass
class SFTCollator:
    """Right-pads a list of items to tensors ``input_ids``, ``attention_mask``, ``labels``."""

    pad_token_id: int

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(x["input_ids"]) for x in items)
        ids = torch.full((len(items), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
        attn = torch.zeros((len(items), width), dtype=torch.long)
        for r, x in enumerate(items):
            n = len(x["input_ids"])
            ids[r, :n] = torch.as_tensor(x["input_ids"])
            labels[r, :n] = torch.as_tensor(x["labels"])
            attn[r, :n] = 1
        return {"input_ids": ids, "attention_mask": attn, "labels": labels}


def load_datasets(spec: str, dataset_dir: str | Path, max_samples: int | None = None) -> Pool:
    """One pool from a comma-separated list of files or ``dataset_info.json`` names.

    Each name is a path when such a file exists, else an entry of
    ``dataset_dir/dataset_info.json``. ``max_samples`` keeps the first that many of each.
    Several datasets are concatenated (ids prefixed with the dataset name).
    """
    names = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not names:
        raise DataError("no dataset named", field="dataset")
    pools = []
    for name in names:
        if Path(name).expanduser().exists():
            pool = load_pool(Path(name).expanduser())
        else:
            pool = load_pool(Path(dataset_dir), dataset=name)
        if max_samples is not None:
            pool = pool.subset(range(min(max_samples, len(pool))))
        pools.append((name, pool))
    if len(pools) == 1:
        return pools[0][1]
    ids = [f"{name}:{i}" for name, p in pools for i in p.ids]
    return Pool(ids=ids, conversations=[c for _, p in pools for c in p.conversations],
                records=[r for _, p in pools for r in p.records],
                source=Source(",".join(names), "mixed", "mixed", {}))
