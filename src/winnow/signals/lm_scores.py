"""Model-scored signals: response loss and perplexity, IFD, uncertainty, instruction perplexity.

All columns of ``lm_scores`` come from one family of batched forward passes: each example's
conversation under the prompt template (the conditioned pass), and each of its responses
on its own (the unconditioned pass of IFD).

IFD modes, as the official code computes them:

``cherry`` (tianyi-lab/Cherry_LLM, ``data_analysis.py`` / ``data_by_IFD.py``)
    ``ifd = loss / loss_alone``, both mean response-token NLLs. The unconditioned text is the
    template's response header (``"### Response:"`` for alpaca) followed by the response,
    cut to ``max_length - prompt_len + 4`` tokens (``prompt_len``: tokens before the
    response, at most ``max_length``; the official constant is 4 for the alpaca header and 6
    for the vicuna one, ``"ASSISTANT:"`` (``data_analysis_vic.py``); other templates use the
    header's own token count). Where the official selection script skips an example, ``ifd``
    is NaN: no response token survives on either side, or
    ``prompt_len + len(response alone) > max_length`` (over-length). The response alone
    keeps at most ``max_length - prompt_len + extra - header_tokens`` tokens, so the
    over-length test fires exactly when ``extra`` exceeds the header's token count and the
    response does not fit: with SmolLM2 (no BOS, ``"### Response:"`` is 3 tokens) every
    example whose response is cut gets NaN; with a Llama tokenizer (BOS + 3 tokens) it never
    fires, and a cut response is scored on the part that fits, on both sides.
``superfilter`` (tianyi-lab/Superfiltering, ``code_ifd/data_analysis.py``)
    ``ifd = ppl / ppl_alone``. The unconditioned text is the raw response, cut to
    ``max_length - prompt_len + 1`` tokens, every token but the first scored. NaN only when
    a side has no scored token.

Multi-turn conversations: every assistant turn is a response. ``loss`` and the uncertainty
columns cover all response tokens that fit in ``max_length``; each response is scored
alone with the turn's own ``prompt_len`` (all tokens before it), and IFD sums the NLLs of
the turns that keep tokens on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import TYPE_CHECKING, Any

import numpy as np

from winnow.data.pool import Pool
from winnow.data.templates import (
    AlpacaTemplate,
    Rendered,
    Template,
    encode_batch,
    get_template,
)
from winnow.signals.base import CausalLMSignal, Columns

if TYPE_CHECKING:  # the model layer (torch) loads when a signal computes, not to validate
    from winnow.models.causal_lm import LoadedLM

IFD_MODES = ("cherry", "superfilter")

LM_COLUMNS = ("loss", "ppl", "loss_alone", "ppl_alone", "ifd", "entropy", "least_confidence",
              "mean_margin", "min_margin", "response_tokens", "prompt_tokens", "truncated")
INSTRUCTION_COLUMNS = ("instruction_loss", "instruction_ppl", "instruction_tokens")


def _alone_rule(lm: LoadedLM, template: Template, ifd: str) -> tuple[str, int]:
    """(header text, extra tokens) of the unconditioned sequence for an IFD mode."""
    if ifd == "superfilter":
        return "", 1
    if ifd != "cherry":
        raise ValueError(f"unknown ifd mode {ifd!r}; choose from {', '.join(IFD_MODES)}")
    header = template.response_header(lm.tokenizer)
    if template.cherry_extra is not None:
        return header, template.cherry_extra
    return header, len(lm.tokenizer(header)["input_ids"])


def _mean(total: float, count: int) -> float:
    return total / count if count else float("nan")


def score_rendered(lm: LoadedLM, rendered: list[Rendered], *, header: str, extra: int,
                   max_length: int = 512, ifd: str = "cherry", token_budget: int | None = None,
                   progress: bool = False) -> Columns:
    """The ``lm_scores`` columns (arrays of length n) for rendered conversations.

    header, extra : the unconditioned sequence of a response is ``header + response``, cut to
        ``max_length - prompt_len + extra`` tokens; scoring starts after the header.
    """
    from winnow.models.token_scores import Sequence, score_sequences

    if ifd not in IFD_MODES:
        raise ValueError(f"unknown ifd mode {ifd!r}; choose from {', '.join(IFD_MODES)}")
    tok = lm.tokenizer
    enc = encode_batch(rendered, tok, max_length)
    seqs, owners = [], []  # conditioned: one per example; alone: one per response turn
    for e in enc:
        targets = e.response_mask.copy()
        seqs.append(Sequence(e.input_ids, targets, uncertainty=True))
    alone_texts, alone_meta = [], []
    for i, (r, e) in enumerate(zip(rendered, enc)):
        for k, (a, b) in enumerate(r.responses):
            alone_texts.append(header + r.text[a:b])
            alone_meta.append((i, k, max_length - min(e.turns[k][0], max_length) + extra))
    header_len = len(tok(header)["input_ids"])
    alone_ids = tok(alone_texts)["input_ids"] if alone_texts else []
    for ids, (i, k, budget) in zip(alone_ids, alone_meta):
        kept = np.asarray(ids[:max(budget, 0)], dtype=np.int64)
        targets = np.arange(len(kept)) >= max(header_len, 1)
        seqs.append(Sequence(kept, targets))
        owners.append((i, k))
    scores = score_sequences(lm, seqs, token_budget=token_budget, progress=progress,
                             desc=f"lm_scores ({lm.dtype_name})")
    n = len(rendered)
    alone_by_turn = {ik: s for ik, s in zip(owners, scores[n:])}
    cols: dict[str, np.ndarray] = {c: np.full(n, np.nan, dtype=np.float32) for c in LM_COLUMNS}
    cols["response_tokens"] = np.zeros(n, dtype=np.int32)
    cols["prompt_tokens"] = np.zeros(n, dtype=np.int32)
    cols["truncated"] = np.zeros(n, dtype=bool)
    for i, e in enumerate(enc):
        s = scores[i]
        m = len(s.nll)
        cols["response_tokens"][i] = m
        cols["prompt_tokens"][i] = e.length - sum(b - a for a, b in e.turns)
        cols["truncated"][i] = any(b > max_length for _, b in e.turns)
        if m:
            cols["loss"][i] = s.nll.mean(dtype=np.float64)
            cols["entropy"][i] = s.entropy.mean(dtype=np.float64)
            cols["least_confidence"][i] = s.nll.sum(dtype=np.float64)
            cols["mean_margin"][i] = s.margin.mean(dtype=np.float64)
            cols["min_margin"][i] = s.margin.min()
        # per-turn sums for IFD over the turns that keep tokens on both sides
        positions = np.flatnonzero(e.response_mask[1:]) + 1  # scored positions, in order
        cond_sum = cond_n = alone_sum = alone_n = 0.0
        over_length = False
        for k, (a, b) in enumerate(e.turns):
            alone = alone_by_turn[i, k]
            in_turn = (positions >= a) & (positions < b)
            c_k, a_k = int(in_turn.sum()), len(alone.nll)
            if c_k <= 0 or a_k <= 0:
                continue
            cond_sum += float(s.nll[in_turn].sum(dtype=np.float64))
            cond_n += c_k
            alone_sum += float(alone.nll.sum(dtype=np.float64))
            alone_n += a_k
            if min(a, max_length) + a_k > max_length:
                over_length = True
        loss_alone = _mean(alone_sum, int(alone_n))
        cols["loss_alone"][i] = loss_alone
        cols["ppl_alone"][i] = np.exp(loss_alone)
        if cond_n and alone_n:
            cond_loss = cond_sum / cond_n
            if ifd == "cherry":
                if not over_length:
                    cols["ifd"][i] = cond_loss / loss_alone
            else:
                cols["ifd"][i] = np.exp(cond_loss) / np.exp(loss_alone)
    cols["ppl"] = np.exp(cols["loss"]).astype(np.float32)
    return cols


def score_conversations(lm: LoadedLM, conversations: Seq[list[dict[str, Any]]], *,
                        template: str | Template = "alpaca", max_length: int = 512,
                        ifd: str = "cherry", token_budget: int | None = None,
                        progress: bool = False) -> Columns:
    """The ``lm_scores`` columns for conversations (lists of role/content turns).

    Returns float32 arrays of length n for ``loss, ppl, loss_alone, ppl_alone, ifd, entropy,
    least_confidence, mean_margin, min_margin``, int32 ``response_tokens, prompt_tokens`` and
    bool ``truncated``.
    """
    tpl = get_template(template)
    rendered = [tpl.render(c, lm.tokenizer) for c in conversations]
    header, extra = _alone_rule(lm, tpl, ifd)
    return score_rendered(lm, rendered, header=header, extra=extra, max_length=max_length,
                          ifd=ifd, token_budget=token_budget, progress=progress)


def score_texts(lm: LoadedLM, prompts: Seq[str], responses: Seq[str], *, max_length: int = 512,
                ifd: str = "cherry", response_header: str = "### Response:",
                extra: int = AlpacaTemplate.cherry_extra, token_budget: int | None = None,
                progress: bool = False) -> Columns:
    """The ``lm_scores`` columns for already formatted prompts and their responses.

    Each text is ``prompt + response`` (tokenizer special tokens added). In cherry mode the
    unconditioned text is ``response_header + response`` cut to
    ``max_length - prompt_len + extra`` tokens (superfilter mode ignores both).
    """
    rendered = [Rendered(p + r, ((len(p), len(p) + len(r)),), True)
                for p, r in zip(prompts, responses)]
    if ifd == "superfilter":
        response_header, extra = "", 1
    return score_rendered(lm, rendered, header=response_header, extra=extra,
                          max_length=max_length, ifd=ifd, token_budget=token_budget,
                          progress=progress)


def instruction_scores(lm: LoadedLM, conversations: Seq[list[dict[str, Any]]], *,
                       template: str | Template = "alpaca", max_length: int = 512,
                       embedding: bool = False, token_budget: int | None = None,
                       progress: bool = False) -> Columns:
    """Perplexity of the prompt alone (Cherry LLM "pre" mode), per example.

    The prompt is the rendered conversation up to the start of its last response (for a
    single exchange: the whole templated instruction, ``"### Response:"`` included), cut to
    ``max_length`` tokens; every token but the first is scored. Returns float32
    ``instruction_loss, instruction_ppl``, int32 ``instruction_tokens`` and, with
    ``embedding``, ``instruction_embedding`` (n, hidden) float32: the mean last hidden state.
    """
    from winnow.models.token_scores import Sequence, score_sequences

    tpl = get_template(template)
    rendered = [tpl.render(c, lm.tokenizer) for c in conversations]
    seqs = []
    for r in rendered:
        cut = r.responses[-1][0] if r.responses else len(r.text)
        ids = lm.tokenizer(r.text[:cut], add_special_tokens=r.add_special_tokens)["input_ids"]
        ids = np.asarray(ids[:max_length], dtype=np.int64)
        seqs.append(Sequence(ids, np.arange(len(ids)) >= 1, embed=embedding))
    scores = score_sequences(lm, seqs, token_budget=token_budget, progress=progress,
                             desc=f"instruction_ppl ({lm.dtype_name})")
    loss = np.array([s.nll.mean(dtype=np.float64) if len(s.nll) else np.nan for s in scores],
                    dtype=np.float32)
    cols = {"instruction_loss": loss, "instruction_ppl": np.exp(loss).astype(np.float32),
            "instruction_tokens": np.array([len(s.input_ids) for s in seqs], dtype=np.int32)}
    if embedding:
        cols["instruction_embedding"] = np.stack([s.embedding for s in scores]).astype(
            np.float32) if scores else np.zeros((0, lm.model.config.hidden_size), np.float32)
    return cols


class _LMSignal(CausalLMSignal):
    """Common parameters and lazy model loading of the causal-LM signals."""

    shard_size = 512

    def __init__(self, model: str = "default", template: str = "alpaca", max_length: int = 512,
                 dtype: str = "auto", device: str = "auto", revision: str | None = None,
                 token_budget: int | None = None, progress: bool = True, **params: Any):
        from winnow.models.device import dtype_name, resolve_device, resolve_dtype

        self.device = str(resolve_device(device))
        self.dtype = dtype_name(resolve_dtype(dtype, resolve_device(self.device)))
        self.token_budget = int(token_budget) if token_budget else None
        self.progress = progress
        get_template(template)  # fail early on an unknown name
        super().__init__(model=str(model), template=str(template), max_length=int(max_length),
                         dtype=self.dtype, revision=revision, **params)



class LMScores(_LMSignal):
    """Response loss/perplexity, IFD (cherry or superfilter) and uncertainty columns.

    Parameters: model (``"default"``, path or HF id), template (alpaca | vicuna | chat | plain),
    max_length (512), ifd (cherry | superfilter), dtype (auto | fp32 | bf16 | fp16),
    device, revision, token_budget (tokens per batch), progress.
    """

    name = "lm_scores"
    version = "1"
    columns = LM_COLUMNS

    def __init__(self, ifd: str = "cherry", **params: Any):
        if ifd not in IFD_MODES:
            raise ValueError(f"unknown ifd mode {ifd!r}; choose from {', '.join(IFD_MODES)}")
        super().__init__(ifd=ifd, **params)

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        p = self.params
        return score_conversations(self.lm, pool.conversations[start:stop],
                                   template=p["template"], max_length=p["max_length"],
                                   ifd=p["ifd"], token_budget=self.token_budget,
                                   progress=self.progress)


class InstructionPPL(_LMSignal):
    """Perplexity of the prompt alone (Cherry LLM "pre" mode); optional mean hidden state.

    Parameters as ``lm_scores`` (no ifd) plus ``embedding`` (False): also return
    ``instruction_embedding`` (n, hidden), the input of Cherry's pre-experience clustering.
    """

    name = "instruction_ppl"
    version = "1"
    columns = INSTRUCTION_COLUMNS

    @classmethod
    def output_columns(cls, params: dict[str, Any]) -> tuple[str, ...]:
        return cls.columns + (("instruction_embedding",) if params.get("embedding") else ())

    def __init__(self, embedding: bool | str = False, **params: Any):
        if isinstance(embedding, str):
            embedding = embedding.strip().lower() in ("1", "true", "yes", "on")
        super().__init__(embedding=bool(embedding), **params)

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        p = self.params
        return instruction_scores(self.lm, pool.conversations[start:stop],
                                  template=p["template"], max_length=p["max_length"],
                                  embedding=p["embedding"], token_budget=self.token_budget,
                                  progress=self.progress)
