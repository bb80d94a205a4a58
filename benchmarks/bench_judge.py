"""Judge throughput on this CPU: the built-in llama.cpp server at 1, 2 and 4 slots, and
digit-probability read-off in process (transformers) vs over HTTP.

**Judging**: an AlpaGasus-style chat request per Alpaca example (system message, the
instruction/input/response triplet, "first output a single line containing the value",
temperature 0, ``--max-tokens``), sent to the built-in server (SmolLM2-135M-Instruct Q4_1
GGUF) through :class:`winnow.models.chat.ChatClient`: one request at a time to a 1-slot
server (the sequential baseline, as a plain loop over an API would do), then with as many
requests in flight as the server has slots (2, 4). Prompt and generated token counts are the
server's own (``usage``); llama.cpp's prompt cache is turned off per request
(``cache_prompt: false``) so that repeated runs recompute every prompt.

**Digit read-off** (DEITA's complexity prompt, raw text): the expected score Σ k·p_k over
the tokens "1".."6" at the first generated position, over HTTP (completions, ``max_tokens``
1, ``top_logprobs`` 1000, as many in flight as the digit server has slots) vs in process
(:func:`winnow.models.judge.next_token_logprobs`, batches of ``--batch-size``, fp32 and,
where the CPU runs it natively, bf16). The expectations are compared with the fp32 ones
(max absolute difference, Spearman).

Variants run interleaved after one untimed round (A, B, C, ..., A, B, C, ...); times are
medians of ``--runs`` (3). llama.cpp's and torch's threads spin while they wait for each
other: on a machine whose cores are busy, ``--threads 1`` is much faster than more.

    python benchmarks/bench_judge.py                        # 32 examples, 3 runs
    python benchmarks/bench_judge.py --n 8 --runs 1 --threads 1   # smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _machine import header, machine
from scipy.stats import spearmanr

from winnow.data import load_pool
from winnow.data.templates import user_parts
from winnow.models.causal_lm import load_causal_lm
from winnow.models.chat import ChatClient
from winnow.models.device import cpu_has_bf16
from winnow.models.judge import next_token_logprobs, prompt_ids
from winnow.models.judge_server import JudgeServer
from winnow.signals.judge import exchanges
from winnow.signals.judge_parsers import DigitsExpectation

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "alpaca_en_demo.json"

SYSTEM = ("We would like to request your feedback on the performance of AI assistant in "
          "response to the instruction and the given input displayed following.")
RATE = ("###Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n{response}"
        "\n\nPlease rate according to the accuracy of the response to the instruction and the "
        "input. Each assistant receives a score on a scale of 0 to 5, where a higher score "
        "indicates higher level of the accuracy. Please first output a single line containing "
        "value indicating the scores. In the subsequent line, please provide a comprehensive "
        "explanation of your evaluation, avoiding any potential bias.")
COMPLEXITY = ("You are a helpful assistant. Please identify the complexity score of the "
              "following user query. \n##Query: {query}  \n##Complexity: ")
DIGITS = "123456"


def judge_requests(pool, max_tokens: int) -> list[dict]:
    out = []
    for conv in pool.conversations:
        user, response = exchanges(conv)[-1]
        instruction, inp = user_parts(user)
        text = RATE.format(instruction=instruction, input=inp, response=response)
        out.append({"messages": [{"role": "system", "content": SYSTEM},
                                 {"role": "user", "content": text}],
                    "temperature": 0, "max_tokens": max_tokens, "cache_prompt": False})
    return out


def digit_prompts(pool) -> list[str]:
    return [COMPLEXITY.format(query=exchanges(c)[-1][0]["content"]) for c in pool.conversations]


def run_http(client: ChatClient, requests: list[dict]) -> tuple[float, dict, list]:
    t = time.perf_counter()
    results = client.map(requests)
    seconds = time.perf_counter() - t
    failed = [r.reason for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} requests failed; first: {failed[0]}")
    tokens = {k: sum(r.usage[k] for r in results) for k in ("prompt_tokens", "completion_tokens")}
    return seconds, tokens, results


def expectations_http(results, parser: DigitsExpectation) -> np.ndarray:
    return np.array([parser(r.text, r.logprobs).value for r in results])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=32, help="examples (first n of alpaca_en_demo)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None,
                    help="llama.cpp and torch threads (default: llama.cpp's and torch's own)")
    ap.add_argument("--digit-slots", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "bench_judge.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    info = machine()
    pool = load_pool(args.data).subset(range(args.n))
    rate = judge_requests(pool, args.max_tokens)
    texts = digit_prompts(pool)
    parser = DigitsExpectation(digits=DIGITS, top_logprobs=1000)
    digit_requests = [{"prompt": t, "temperature": 0, "max_tokens": 1, "logprobs": True,
                       "top_logprobs": 1000, "cache_prompt": False} for t in texts]

    servers = {slots: JudgeServer(slots=slots, threads=args.threads).start()
               for slots in sorted({1, 2, 4, args.digit_slots})}
    clients = {slots: ChatClient(s.url, s.model, api_key_env="", concurrency=slots,
                                 timeout=3600)
               for slots, s in servers.items()}
    models = {"fp32": load_causal_lm("default", dtype="fp32")}
    if cpu_has_bf16():
        models["bf16"] = load_causal_lm("default", dtype="bf16")
    ids = [prompt_ids(models["fp32"].tokenizer, t) for t in texts]

    judging = {"sequential (1 slot, 1 in flight)": 1, "2 slots, 2 in flight": 2,
               "4 slots, 4 in flight": 4}
    digit_variants = [f"HTTP ({args.digit_slots} slots, top_logprobs 1000)",
                      *(f"transformers {dt}, batch {args.batch_size}" for dt in models)]
    times: dict[str, list[float]] = {k: [] for k in [*judging, *digit_variants]}
    tokens: dict[str, dict] = {}
    scores: dict[str, np.ndarray] = {}
    try:
        for run in range(args.runs + 1):  # round 0 is untimed
            for name, slots in judging.items():
                seconds, tok, _ = run_http(clients[slots], rate)
                if run:
                    times[name].append(seconds)
                    tokens[name] = tok
                    print(f"run {run}/{args.runs} {name}: {seconds:.1f} s", file=sys.stderr)
            seconds, tok, results = run_http(clients[args.digit_slots], digit_requests)
            scores[digit_variants[0]] = expectations_http(results, parser)
            tokens[digit_variants[0]] = tok
            if run:
                times[digit_variants[0]].append(seconds)
            for name, lm in zip(digit_variants[1:], models.values()):
                t = time.perf_counter()
                lp = next_token_logprobs(lm, ids, list(DIGITS), batch_size=args.batch_size)
                seconds = time.perf_counter() - t
                scores[name] = np.array([parser.expectation(dict(zip(DIGITS, row)))
                                         for row in lp])
                tokens[name] = {"prompt_tokens": sum(map(len, ids)), "completion_tokens": 0}
                if run:
                    times[name].append(seconds)
                    print(f"run {run}/{args.runs} {name}: {seconds:.1f} s", file=sys.stderr)
    finally:
        for c in clients.values():
            c.close()
        for s in servers.values():
            s.stop()

    rows = []
    base = statistics.median(times[next(iter(judging))])
    for name in times:
        sec = statistics.median(times[name])
        tok = tokens[name]
        rows.append({"variant": name, "seconds": sec, "runs_s": times[name],
                     "examples_per_s": args.n / sec, "prompt_tokens": tok["prompt_tokens"],
                     "completion_tokens": tok["completion_tokens"],
                     "prompt_tok_per_s": tok["prompt_tokens"] / sec,
                     "gen_tok_per_s": tok["completion_tokens"] / sec,
                     "speedup": base / sec if name in judging else None})
    reference = scores[digit_variants[1]]
    agreement = {name: {"max_abs_diff": float(np.abs(scores[name] - reference).max()),
                        "spearman": float(spearmanr(scores[name], reference).statistic)}
                 for name in digit_variants[0:1] + digit_variants[2:]}

    command = "python benchmarks/bench_judge.py " + " ".join(sys.argv[1:])
    threads = args.threads or "default"
    print(f"\n{header(info)}\n")
    print(f"Judging {args.n} Alpaca examples with SmolLM2-135M-Instruct (Q4_1 GGUF, built-in "
          f"llama.cpp server, {threads} threads), AlpaGasus-style chat prompt, max_tokens "
          f"{args.max_tokens}; median of {args.runs} interleaved runs\n")
    print("| variant | s | examples/s | speed-up | prompt tokens | prompt tok/s | generated "
          "tokens | generated tok/s |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["variant"] in judging:
            print(f"| {r['variant']} | {r['seconds']:.2f} | {r['examples_per_s']:.2f} | "
                  f"{r['speedup']:.2f}x | {r['prompt_tokens']} | {r['prompt_tok_per_s']:.0f} | "
                  f"{r['completion_tokens']} | {r['gen_tok_per_s']:.1f} |")
    print(f"\nDigit read-off (DEITA complexity prompt, E = sum k p_k over '1'..'6'), same "
          f"{args.n} examples, torch {torch.get_num_threads()} threads\n")
    print("| variant | s | examples/s | prompt tok/s | max abs diff vs fp32 | Spearman vs fp32 |"
          "\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["variant"] in digit_variants:
            a = agreement.get(r["variant"])
            diff = f"{a['max_abs_diff']:.3f} | {a['spearman']:.3f}" if a else "(reference) | 1"
            print(f"| {r['variant']} | {r['seconds']:.2f} | {r['examples_per_s']:.2f} | "
                  f"{r['prompt_tok_per_s']:.0f} | {diff} |")
    print(f"\ncommand: {command}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"command": command, "machine": info, "n": args.n, "runs": args.runs,
              "max_tokens": args.max_tokens, "threads": args.threads, "rows": rows,
              "agreement": agreement,
              "scores": {k: v.tolist() for k, v in scores.items()}}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"json: {args.out}")


if __name__ == "__main__":
    main()
