"""Per-token log-likelihood of a causal LM: the one place winnow computes token losses.

The model body runs once per batch; the LM head (the vocabulary projection, the costliest
part of a small model) runs only at the positions that predict a target token, in chunks,
in float32 for the softmax, with the model's own logit scaling. On CPU the chunks are small
(about 4M logits): fresh buffers of hundreds of megabytes cost more in page faults than the
head's matmul, while small ones are reused by the allocator. :func:`score_sequences`
sorts sequences by length and packs them into batches under a token budget (rows x longest
row) for statistics without gradients; :func:`label_nll` gives each row's loss over its
labelled tokens (training, evaluation and per-example gradients, differentiable).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from winnow.data.tokenize import IGNORE_INDEX, pad_sequences
from winnow.models.causal_attention import causal_scoring
from winnow.models.causal_lm import LoadedLM

HEAD_CHUNK_ELEMENTS = {"cpu": 1 << 22, "accelerator": 1 << 26}  # positions x vocabulary


@dataclass
class Sequence:
    """One sequence to score.

    input_ids : (T,) int64 token ids.
    targets : (T,) bool, True at tokens whose log-likelihood is wanted. Position 0 is never
        scored (nothing predicts it).
    uncertainty : also compute the entropy and top-1/top-2 margin at the targets.
    embed : also return the mean of the last hidden state over all T tokens.
    """

    input_ids: np.ndarray
    targets: np.ndarray
    uncertainty: bool = False
    embed: bool = False


@dataclass
class TokenScores:
    """Statistics at the k targets of one sequence, in order.

    nll : (k,) float32, -log p(token | preceding tokens).
    entropy : (k,) float32 entropy of the predictive distribution, or None.
    margin : (k,) float32 p_top1 - p_top2 of the predictive distribution, or None.
    embedding : (H,) float32 mean last hidden state, or None.
    """

    nll: np.ndarray
    entropy: np.ndarray | None = None
    margin: np.ndarray | None = None
    embedding: np.ndarray | None = None


def default_token_budget(device: torch.device) -> int:
    """Tokens per batch (rows x longest row): 1024 on CPU, 16384 on an accelerator."""
    return 1024 if device.type == "cpu" else 16384


def length_batches(lengths: list[int] | np.ndarray, token_budget: int) -> list[np.ndarray]:
    """Indices grouped into batches, longest first, each with rows x longest <= budget.

    A sequence longer than the budget gets a batch of its own.
    """
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)
        size = max(1, token_budget // longest)
        batches.append(order[start:start + size])
        start += size
    return batches


def causal_lm(model):
    """The ``*ForCausalLM`` inside a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _head(model) -> tuple[torch.nn.Module, torch.nn.Module, object]:
    """(body, lm_head, config) of a ``*ForCausalLM`` model (PEFT-wrapped or not)."""
    model = causal_lm(model)
    head = model.get_output_embeddings()
    body = model.get_decoder() if hasattr(model, "get_decoder") else model.base_model
    if head is None or body is None:
        raise ValueError(f"{type(model).__name__} has no separable decoder and LM head")
    return body, head, model.config


def _logits(head: torch.nn.Module, config, hidden: torch.Tensor) -> torch.Tensor:
    """Float32 logits from last hidden states, with the model's own logit scaling."""
    logits = head(hidden).float()
    scale = getattr(config, "logit_scale", None)  # Cohere
    if scale:
        logits = logits * scale
    divisor = getattr(config, "logits_scaling", None)  # Granite
    if divisor:
        logits = logits / divisor
    cap = getattr(config, "final_logit_softcapping", None)  # Gemma 2/3
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


@torch.inference_mode()
def score_sequences(lm: LoadedLM, sequences: list[Sequence], *, token_budget: int | None = None,
                    progress: bool = False, desc: str = "scoring") -> list[TokenScores]:
    """Token statistics for each sequence (see :class:`TokenScores`), in input order."""
    from tqdm.auto import tqdm

    model, device = lm.model, lm.device
    body, head, config = _head(model)
    pad_id = lm.tokenizer.pad_token_id or 0
    budget = token_budget or default_token_budget(device)
    results: list[TokenScores | None] = [None] * len(sequences)
    lengths = [len(s.input_ids) for s in sequences]
    bar = tqdm(total=len(sequences), desc=desc, unit="seq", disable=not progress, leave=False)
    with causal_scoring(causal_lm(model)):
        for batch in length_batches(lengths, budget):
            rows = [sequences[i] for i in batch]
            for i, scores in zip(batch, _score_batch(body, head, config, rows, pad_id, device)):
                results[i] = scores
            bar.update(len(rows))
    bar.close()
    return results  # type: ignore[return-value]


def _score_batch(body, head, config, rows: list[Sequence], pad_id: int,
                 device: torch.device) -> list[TokenScores]:
    """Token statistics of one batch of sequences, right-padded into one forward pass (no
    attention mask: under the causal mask a real token never sees the padding after it)."""
    ids_t, attn_t = (t.to(device) for t in pad_sequences([r.input_ids for r in rows], pad_id))
    tgt = _targets([r.targets for r in rows])
    hidden = body(input_ids=ids_t, use_cache=False)[0]
    b_idx, t_idx = np.nonzero(tgt)
    b_t = torch.from_numpy(b_idx).to(device)
    t_t = torch.from_numpy(t_idx).to(device)
    want_unc = any(r.uncertainty for r in rows)
    nll, ent, mar = _target_stats(head, config, hidden[b_t, t_t - 1], ids_t[b_t, t_t], want_unc)
    nll_np = _np(nll)
    ent_np = _np(ent) if want_unc else None
    mar_np = _np(mar) if want_unc else None
    emb = None
    if any(r.embed for r in rows):
        m = attn_t[..., None].to(hidden.dtype)
        emb = ((hidden * m).sum(1) / m.sum(1)).float().cpu().numpy()
    bounds = np.searchsorted(b_idx, np.arange(len(rows) + 1))
    return [TokenScores(nll=nll_np[a:b],
                        entropy=ent_np[a:b] if r.uncertainty else None,
                        margin=mar_np[a:b] if r.uncertainty else None,
                        embedding=emb[j] if r.embed and emb is not None else None)
            for j, (r, a, b) in enumerate(zip(rows, bounds[:-1], bounds[1:]))]


@torch.inference_mode()
def score_after_prefixes(lm: LoadedLM, prefixes: list[np.ndarray], sequences: list[Sequence],
                         *, token_budget: int | None = None, progress: bool = False,
                         desc: str = "scoring after prefixes") -> np.ndarray:
    """(P, S) float64: the summed NLL at the targets of sequence s read right after prefix p,
    for every pair; equal to one forward pass over the token concatenation
    ``prefixes[p] + sequences[s].input_ids``.

    Each prefix runs once; its KV cache is repeated over a batch of sequences. Prefixes and
    sequences are right-padded: a sequence's positions continue from its prefix's own length
    and the attention mask covers the prefix's real tokens and the sequence's, so padding
    never reaches a scored token. Sequences are batched by length under ``token_budget``
    (rows x longest); when a batch is small, several prefixes share one forward. Position 0
    of a sequence is never scored, as in :func:`score_sequences`.
    """
    import copy
    import inspect

    from tqdm.auto import tqdm

    body, head, config = _head(lm.model)
    # transformers 5 takes the KV cache as ``cache``, earlier versions as ``past_key_values``
    cache_kw = "cache" if "cache" in inspect.signature(body.forward).parameters \
        else "past_key_values"
    device = lm.device
    pad_id = lm.tokenizer.pad_token_id or 0
    budget = token_budget or default_token_budget(device)
    out = np.zeros((len(prefixes), len(sequences)), dtype=np.float64)
    blocks = []  # (sequence indices, ids, attention mask, targets) of each sequence batch
    for batch in length_batches([len(s.input_ids) for s in sequences], budget):
        ids, attn = pad_sequences([sequences[i].input_ids for i in batch], pad_id)
        blocks.append((batch, ids.to(device), attn.to(device),
                       _targets([sequences[i].targets for i in batch])))
    if not blocks or not prefixes:
        return out
    per_forward = max(1, budget // max(b[1].numel() for b in blocks))  # prefixes per forward
    order = np.argsort([-len(p) for p in prefixes], kind="stable")
    bar = tqdm(total=len(prefixes), desc=desc, unit="prefix", disable=not progress, leave=False)
    for a in range(0, len(order), per_forward):
        group = order[a:a + per_forward]
        lengths = [len(prefixes[i]) for i in group]
        pids, pattn_t = (t.to(device) for t in pad_sequences([prefixes[i] for i in group],
                                                              pad_id))
        cache = body(input_ids=pids, attention_mask=pattn_t, use_cache=True)[1]
        starts = torch.tensor(lengths, device=device)
        for batch, ids, attn, tgt in blocks:
            rows = len(batch)
            kv = copy.deepcopy(cache)
            kv.batch_repeat_interleave(rows)  # row g * rows + j: prefix g, sequence j
            pos = starts.repeat_interleave(rows)[:, None] + torch.arange(ids.shape[1],
                                                                          device=device)
            hidden = body(input_ids=ids.repeat(len(group), 1),
                          attention_mask=torch.cat([pattn_t.repeat_interleave(rows, 0),
                                                    attn.repeat(len(group), 1)], 1),
                          position_ids=pos, use_cache=True, **{cache_kw: kv})[0]
            b_idx, t_idx = np.nonzero(np.tile(tgt, (len(group), 1)))
            b_t = torch.from_numpy(b_idx).to(device)
            t_t = torch.from_numpy(t_idx).to(device)
            nll, _, _ = _target_stats(head, config, hidden[b_t, t_t - 1],
                                      ids[b_t % rows, t_t])
            sums = np.bincount(b_idx, weights=_np(nll), minlength=len(group) * rows)
            out[np.ix_(group, batch)] = sums.reshape(len(group), rows)
        bar.update(len(group))
    bar.close()
    return out


def _targets(targets: list[np.ndarray]) -> np.ndarray:
    """(b, t_max) bool: each row's targets, right-padded with False; position 0 never."""
    out = pad_sequences([np.asarray(t, dtype=np.int64) for t in targets], 0)[0].numpy() > 0
    out[:, 0] = False
    return out


def _np(x: torch.Tensor) -> np.ndarray:
    return x.float().cpu().numpy()


def _target_stats(head: torch.nn.Module, config, hidden: torch.Tensor, labels: torch.Tensor,
                  uncertainty: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(nll, entropy, margin), each (k,) float32, of predicting ``labels`` (k,) from the
    hidden states (k, H) that precede them; entropy and margin only with ``uncertainty``."""
    nll, ent, mar = [], [], []
    budget = HEAD_CHUNK_ELEMENTS["cpu" if hidden.device.type == "cpu" else "accelerator"]
    step = max(1, budget // max(1, head.weight.shape[0]))
    for s in range(0, len(hidden), step):
        logp = torch.log_softmax(_logits(head, config, hidden[s:s + step]), dim=-1)
        nll.append(-logp.gather(1, labels[s:s + step, None])[:, 0])
        if uncertainty:
            top = logp.topk(2, dim=-1).values.exp()
            mar.append(top[:, 0] - top[:, 1])
            ent.append(-logp.exp().mul_(logp).sum(-1))
    if not nll:
        empty = hidden.new_zeros(0, dtype=torch.float32)
        return empty, empty if uncertainty else None, empty if uncertainty else None
    return (torch.cat(nll), torch.cat(ent) if uncertainty else None,
            torch.cat(mar) if uncertainty else None)


def right_padded(attention_mask: torch.Tensor) -> bool:
    """Whether every row of a (b, t) attention mask is ones followed by zeros (a causal
    model then needs no mask: no real token sees the padding after it)."""
    return bool((attention_mask.cummin(dim=1).values == attention_mask).all())


def label_nll(model, batch: dict[str, torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """(b,) NLL of each row's labelled tokens (``labels`` != -100, each predicted from the
    position before it): summed (``"sum"``) or averaged (``"mean"``; 0 for a row without
    labelled tokens). ``batch`` holds ``input_ids``, ``attention_mask`` (None for a
    right-padded batch scored without one) and ``labels``, (b, t) on the model's device;
    differentiable when gradients are enabled."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be mean or sum, not {reduction!r}")
    body, head, config = _head(model)
    hidden = body(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"),
                  use_cache=False)[0]
    labels = batch["labels"][:, 1:]
    sel = labels != IGNORE_INDEX
    rows, cols = sel.nonzero(as_tuple=True)
    nll, _, _ = _target_stats(head, config, hidden[rows, cols], labels[rows, cols])
    sums = torch.zeros(labels.shape[0], device=nll.device, dtype=nll.dtype).index_add(0, rows,
                                                                                      nll)
    if reduction == "sum":
        return sums
    return sums / sel.sum(1).clamp(min=1)
