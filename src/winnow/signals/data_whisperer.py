"""Data Whisperer: an example's worth as a few-shot demonstration, weighted by attention.

Data Whisperer (Wang et al., "Data Whisperer: Efficient Data Selection for Task-Specific LLM
Fine-Tuning via Few-Shot In-Context Learning", ACL 2025; official code gszfwsb/Data-Whisperer,
``pruning/datawhisperer_*_pruner.py``) scores a pool without a validation set:

- folds: ``KFold(folds, shuffle=True, random_state=seed)`` over the pool (2 and 42 as the
  official code); in each fold the training part gives the demonstrations and the held-out
  part the queries;
- rounds: the demonstrations in order, ``n_demos`` (5) per round; the queries in order,
  ``n_queries`` (3) per round, the query batches taken in turn and restarted when used up;
- one prompt per round: a system message, the demonstrations (``Instruction: ..`` /
  ``Input: ..`` / ``Answer: ..``), the answer format (``Question k Answer: ...``) and the
  queries (``Question k: Instruction: "..." Input: "..."``), in the model's chat template;
  the model answers greedily;
- metric per query by answer type: exact match of the final number when the reference
  answer is a number (or ends in GSM8K's ``#### n``), ROUGE-L F1 (``rouge_score``, Porter
  stemmer) otherwise; the reply is split at the first answer header that occurs in it
  (``Question k Answer:``, then ``### Question k:``, ``Question k:``, ``Answer k:``,
  ``Answer:``, the official parser's cascade); a round with fewer answers than queries is
  skipped, extra answers are dropped;
- attention weight of demonstration i: the attention of layer ``layer`` (default
  n_layers // 2; eager attention over the prompt, summed over heads) from the query block's
  tokens (everything after the demonstrations) to demonstration i's tokens, divided by
  (tokens of i x tokens of the query block), then normalised over the round's
  demonstrations;
- ``data_whisperer`` = Σ over counted rounds and their queries of metric x weight, divided by
  the number of queries of those rounds; 0 for an example in no counted round (the official
  default; ``dw_rounds`` = 0 flags it).

Adaptations, as the recipe notes say: the official prompts are written per dataset
(BioInstruct, GSM8K, DialogSum) and per model family; this one is generic, in those prompts'
structure, rendered by the tokenizer's chat template. Token spans come from the prompt's
pieces tokenized one by one and concatenated (so they are exact; the official code counts
the pieces' tokens separately but runs the whole prompt tokenized at once). Generation stops
at ``max_new_tokens`` (the official limit is 8,192 tokens of prompt and answer) or once the
reply writes the header of a question past the last one (``Question 4`` or ``Answer 4:``
with 3 queries): the answers from there on are dropped anyway, and the last kept answer
ends at that header in either case.

Rounds are computed once per process and shared by the shards that hold their
demonstrations.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from winnow.data.pool import Pool
from winnow.signals.base import CausalLMSignal, Columns
from winnow.signals.embeddings import last_parts

SYSTEM = ("You are an expert assistant. Given an instruction and, where there is one, an "
          "input, reply with a correct and concise answer.\n"
          "Guidelines:\n"
          "1. Answer each question clearly and to the point.\n"
          "2. Answer the questions in their order; do not skip or merge answers.\n"
          "3. Add no commentary and do not repeat the question.")
INTRO = "Here are demonstrations of how to answer:\n\n"
FORMAT = ("\nUse exactly this format:\n"
          "Question 1 Answer: <your answer to Question 1>\n"
          "Question 2 Answer: <your answer to Question 2>\n"
          "(and so on).\n"
          "Now, following the demonstrations, answer these questions:\n")
METRICS = ("auto", "exact_match", "rouge_l")

# Answer headers tried in turn, as the official parser does: the first that occurs splits
# the reply (each answer runs to the next occurrence of the same header).
HEADERS = (re.compile(r"\**\s*Question\s+\d+\s+Answer\s*:?\**", re.I),
           re.compile(r"### Question \d+:"),
           re.compile(r"Question \d+:"),
           re.compile(r"Answer \d+:"),
           re.compile(r"Answer:"))
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+")


def demonstration(conversation: list[dict[str, Any]]) -> str:
    """An example as a demonstration: its last exchange's instruction, input (when it has
    one) and answer."""
    instruction, input_, response = (p.strip() for p in last_parts(conversation))
    return (f"Instruction: {instruction}\n" + (f"Input: {input_}\n" if input_ else "")
            + f"Answer: {response}\n")


def question(k: int, conversation: list[dict[str, Any]]) -> str:
    """Query ``k`` (1-based) of a round: its instruction and input, quoted."""
    instruction, input_, _ = (p.strip() for p in last_parts(conversation))
    return (f'Question {k}: Instruction: "{instruction}"'
            + (f' Input: "{input_}"' if input_ else ""))


def parse_answers(reply: str) -> list[str]:
    """The answers of a reply: split at the first answer header of :data:`HEADERS` that
    occurs (``Question k Answer:``, ``### Question k:``, ``Question k:``, ``Answer k:``,
    ``Answer:``)."""
    for header in HEADERS:
        marks = list(header.finditer(reply))
        if marks:
            ends = [m.start() for m in marks[1:]] + [len(reply)]
            return [reply[m.end():end].strip() for m, end in zip(marks, ends)]
    return []


def _final_number(text: str) -> float | None:
    """The number after GSM8K's last ``####``, else the text itself when it is a number."""
    tail = text.rsplit("####", 1)[1] if "####" in text else text
    tail = tail.strip().replace(",", "")
    try:
        return float(tail)
    except ValueError:
        return None


def answer_score(prediction: str, reference: str, metric: str = "auto") -> float:
    """1/0 exact match of the final number (numeric references), else ROUGE-L F1."""
    number = _final_number(reference)
    if metric == "exact_match" or (metric == "auto" and number is not None):
        if number is None:
            return 0.0
        tail = prediction.rsplit("####", 1)[1] if "####" in prediction else prediction
        found = _NUMBER.findall(tail)
        return float(bool(found) and float(found[-1].replace(",", "")) == number)
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(scorer.score(reference, prediction)["rougeL"].fmeasure)


def rounds(n: int, n_demos: int, n_queries: int, folds: int,
           seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(demonstration indices, query indices) of every round, fold by fold (see the module
    doc)."""
    from sklearn.model_selection import KFold

    out = []
    for train, held in KFold(n_splits=folds, shuffle=True, random_state=seed).split(
            np.arange(n)):
        queries = [held[a:a + n_queries] for a in range(0, len(held), n_queries)]
        for r, a in enumerate(range(0, len(train), n_demos)):
            out.append((train[a:a + n_demos], queries[r % len(queries)]))
    return out


class DataWhisperer(CausalLMSignal):
    """Few-shot demonstration value weighted by attention (see the module doc).

    Parameters: model ("default" or any causal LM with a chat template), n_demos (5),
    n_queries (3), folds (2), seed (the KFold ``random_state``, 42), layer (None:
    n_layers // 2), max_new_tokens (512), metric (auto | exact_match | rouge_l), dtype
    (auto: bf16 where the hardware runs it, as the official bf16 runs), device, revision,
    batch_size (rounds per generation and attention batch), progress.

    Columns: ``data_whisperer`` (float32) and ``dw_rounds`` (int32, counted rounds in which
    the example was a demonstration).
    """

    name = "data_whisperer"
    version = "1"
    columns = ("data_whisperer", "dw_rounds")
    shard_size = 250

    def __init__(self, model: str = "default", n_demos: int = 5, n_queries: int = 3,
                 folds: int = 2, seed: int = 42, layer: int | None = None,
                 max_new_tokens: int = 512, metric: str = "auto", dtype: str = "auto",
                 device: str = "auto", revision: str | None = None, batch_size: int = 4,
                 progress: bool = True):
        from winnow.models.device import dtype_name, resolve_device, resolve_dtype

        if metric not in METRICS:
            raise ValueError(f"metric is one of {', '.join(METRICS)}, not {metric!r}")
        for name, value, least in (("n_demos", n_demos, 1), ("n_queries", n_queries, 1),
                                   ("folds", folds, 2), ("max_new_tokens", max_new_tokens, 1)):
            if int(value) < least:
                raise ValueError(f"{name} must be at least {least}, not {value}")
        self.device = str(resolve_device(device))
        self.batch_size, self.progress = max(1, int(batch_size)), progress
        super().__init__(model=str(model), n_demos=int(n_demos), n_queries=int(n_queries),
                         folds=int(folds), seed=int(seed),
                         layer=None if layer is None else int(layer),
                         max_new_tokens=int(max_new_tokens), metric=metric,
                         dtype=dtype_name(resolve_dtype(dtype, resolve_device(self.device))),
                         revision=revision)
        self._done: dict[tuple[str, int], tuple[np.ndarray, np.ndarray] | None] = {}


    def layer(self) -> int:
        from winnow.models.attention import decoder_layers

        layer = self.params["layer"]
        return len(decoder_layers(self.lm.model)) // 2 if layer is None else layer

    def prompt(self, demos: list[list[dict]], queries: list[list[dict]]
               ) -> tuple[list[int], list[slice], slice]:
        """(token ids, span of each demonstration, span of the query block) of one round's
        prompt, the pieces tokenized one by one."""
        tok = self.lm.tokenizer
        demo_texts = [demonstration(c) for c in demos]
        questions = FORMAT + "\n".join(question(k + 1, c) for k, c in enumerate(queries))
        user = INTRO + "".join(demo_texts) + questions
        text = tok.apply_chat_template([{"role": "system", "content": SYSTEM},
                                        {"role": "user", "content": user}],
                                       tokenize=False, add_generation_prompt=True)
        at = text.index(user)
        pieces = [text[:at] + INTRO, *demo_texts, questions + text[at + len(user):]]
        ids: list[int] = []
        spans = []
        for piece in pieces:
            part = tok(piece, add_special_tokens=False)["input_ids"]
            spans.append(slice(len(ids), len(ids) + len(part)))
            ids.extend(part)
        return ids, spans[1:-1], spans[-1]

    def _run_rounds(self, pool: Pool, todo: list[int], plan) -> None:
        """Answer and weigh the rounds ``todo`` of ``plan`` (stored in ``self._done``)."""
        from tqdm.auto import tqdm

        from winnow.models.attention import layer_attention
        from winnow.models.generate import generate_ids

        lm, p, layer = self.lm, self.params, self.layer()
        tok = lm.tokenizer
        bar = tqdm(total=len(todo), desc="data_whisperer rounds", unit="round",
                   disable=not self.progress)
        for a in range(0, len(todo), self.batch_size):
            chunk = todo[a:a + self.batch_size]
            built = [self.prompt([pool.conversations[i] for i in plan[r][0]],
                                 [pool.conversations[i] for i in plan[r][1]]) for r in chunk]
            ids = [b[0] for b in built]
            after = p["n_queries"] + 1  # a header past the last query: its answers are dropped
            replies = generate_ids(lm.model, tok, ids, p["max_new_tokens"],
                                   batch_size=len(ids),
                                   stop_strings=[f"Question {after}", f"Answer {after}:"])
            weights = layer_attention(lm.model, ids, layer, pad_id=tok.pad_token_id,
                                      batch_size=len(ids))
            for r, (_, spans, block), reply, attn in zip(chunk, built, replies, weights):
                demos, queries = plan[r]
                answers = parse_answers(tok.decode(reply, skip_special_tokens=True))
                if len(answers) < len(queries):
                    self._done[(pool.fingerprint(), r)] = None  # skipped, as officially
                    continue
                rows = attn[block]
                w = np.array([rows[:, s].sum() / ((s.stop - s.start) * len(rows))
                              for s in spans], dtype=np.float64)
                w = w / w.sum()
                metric = [answer_score(answers[q], last_parts(pool.conversations[i])[2],
                                       p["metric"]) for q, i in enumerate(queries)]
                self._done[(pool.fingerprint(), r)] = (demos, w * sum(metric))
            bar.update(len(chunk))
        bar.close()

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        p = self.params
        if len(pool) < p["folds"]:
            raise ValueError(f"data_whisperer: {len(pool)} examples cannot make "
                             f"{p['folds']} folds")
        plan = rounds(len(pool), p["n_demos"], p["n_queries"], p["folds"], p["seed"])
        fp = pool.fingerprint()
        mine = [r for r, (demos, _) in enumerate(plan)
                if ((demos >= start) & (demos < stop)).any()]
        todo = [r for r in mine if (fp, r) not in self._done]
        if todo:
            self._run_rounds(pool, todo, plan)
        score = np.zeros(stop - start, dtype=np.float64)
        count = np.zeros(stop - start, dtype=np.int64)
        counted = np.zeros(stop - start, dtype=np.int32)
        for r in mine:
            done = self._done[(fp, r)]
            if done is None:
                continue
            demos, gain = done
            inside = (demos >= start) & (demos < stop)
            score[demos[inside] - start] += gain[inside]
            count[demos[inside] - start] += len(plan[r][1])
            counted[demos[inside] - start] += 1
        value = np.divide(score, count, out=np.zeros_like(score), where=count > 0)
        return {"data_whisperer": value.astype(np.float32), "dw_rounds": counted}
