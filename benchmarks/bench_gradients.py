"""Gradient features per second on the SmolLM2-135M LoRA: winnow vs the LESS way, fp32 both.

``LESS-style`` mirrors the official LESS code (princeton-nlp/LESS,
``less/data_selection/collect_grad_reps.py``) with TRAK's CPU projector: one example per
forward/backward (``model(**batch).loss.backward()``, the Hugging Face loss), the full
flattened LoRA gradient, Adam-preconditioned with the checkpoint's moments, buffered, and
every 16 gradients one ``project()`` call of one projector kept for the whole run. The
dense Rademacher matrix is generated blockwise from its seed once per ``project()`` call
and applied to the 16 buffered gradients together. Two generators do that:
``trak``: TRAK's ``BasicProjector`` scheme (output columns in blocks of 128, each block's
  (grad_dim, 128) ±1 matrix filled by ``torch.bernoulli_`` from its own seed on every call);
``winnow``: ``winnow.models.projection.Projector(kind="rademacher", cache_bytes=0)``,
  which generates each 1024-row chunk of the matrix once per call and multiplies it into
  all the rows of the batch (``addmm``).
Both are timed once on a 65536-row slice before the runs; the baseline uses the faster.
Deviations, none of them slowing the baseline: LESS rounds the buffered gradients to
float16 before projecting (here they stay float32) and runs on a GPU in the model's dtype.

``winnow`` length-buckets the examples (16 per batch, ``--max-tokens`` padded tokens at
most: by default the signal's, 2048 on CPU and 4096 on a GPU), takes per-example gradients
from one backward pass (``hooks``), applies the Adam transform and the sparse projection
block by block; ``winnow-loop`` is the same pipeline with one
forward/backward per example (isolates the batching from the projection). Where the CPU
runs bf16 natively, both also run with the forward under bf16 autocast (weights and the
per-example weight gradients stay float32); their features are compared with the fp32 ones,
per example (cosine: median and minimum).

All variants share the examples, the adapter and its Adam moments (one real AdamW step),
run interleaved (A, B, C, A, B, C, ...) with no warm-up round, median of ``--runs``.

FLOPs: 4 × (linear-layer parameters × tokens fed + LM-head parameters × tokens given
logits): 2 for the forward, 2 for the backward to the activations (the frozen weights get
no weight gradient); attention scores and the LoRA weight gradients are not counted. Tokens
are counted by hooks on the model while each variant runs (padding included), plus the
projection: 2 × rows × grad_dim × proj_dim per dense call, 2 × grad_dim per example for
the sparse sketch. Divided by the time: GFLOP/s and the fraction of the measured fp32
matmul peak.

Agreement (untimed): the unprojected Adam gradients of the baseline (HF loss, one example
at a time) against winnow's (``hooks``, batched), per example; winnow-loop's features
against winnow's (the same sparse projection); and, since the baseline and winnow project
differently, the pairwise cosines between examples (what LESS scores with) under each
projection against the exact cosines of the unprojected gradients.

Prints a markdown table, the machine and the command; writes ``benchmarks/out/gradients.json``.

    python benchmarks/bench_gradients.py                  # LoRA r 8, 16 examples, 3 runs
    python benchmarks/bench_gradients.py --n 4 --runs 1 --proj-dim 1024   # smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from _machine import header, machine

from winnow.data import load_pool
from winnow.data.tokenize import batches, collate, tokenize_conversations
from winnow.models.device import cpu_has_bf16
from winnow.models.grad_features import adam_transform, default_grad_tokens, project_examples
from winnow.models.lora import grad_dim, load_lora_model
from winnow.models.per_example_grads import per_example_grads
from winnow.models.projection import Projector
from winnow.models.token_scores import causal_lm, label_nll

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mixed_pool.jsonl"
BASELINE = "LESS-style (loop, buffered dense Rademacher)"
LOOP = "winnow-loop (loop, sparse sketch)"
HOOKS = "winnow (batched hooks, sparse sketch)"


class TrakStyleProjector:
    """TRAK's CPU ``BasicProjector`` scheme: output columns in blocks of ``block_size``;
    each block's (grad_dim, block_size) ±1 matrix is regenerated from its own seed on every
    ``project()`` call (one pass over the blocks per call, whatever the batch size)."""

    def __init__(self, grad_dim: int, proj_dim: int, seed: int = 0, block_size: int = 128,
                 device: str = "cpu"):
        self.proj_dim, self.seed, self.block_size = proj_dim, seed, min(block_size, proj_dim)
        self.block = torch.empty(grad_dim, self.block_size, device=device)

    def project(self, grads: torch.Tensor) -> torch.Tensor:
        out = torch.empty(grads.shape[0], self.proj_dim, device=grads.device)
        for i, lo in enumerate(range(0, self.proj_dim, self.block_size)):
            hi = min(lo + self.block_size, self.proj_dim)
            gen = torch.Generator(self.block.device).manual_seed(self.seed + 1000 * i)
            self.block.bernoulli_(0.5, generator=gen).mul_(2).sub_(1)
            out[:, lo:hi] = grads @ self.block[:, :hi - lo]
        return out


def dense_projector(dim: int, proj_dim: int, rows: int, probe_dim: int = 65536,
                    device: str = "cpu"):
    """(name, projector for ``dim``, {name: matrix entries generated and applied per s})."""
    make = {"trak": lambda d: TrakStyleProjector(d, proj_dim, device=device),
            "winnow": lambda d: Projector(d, proj_dim, seed=0, kind="rademacher", cache_bytes=0,
                                          device=device)}
    probe_dim = min(probe_dim, dim)
    G = torch.randn(rows, probe_dim, device=device)
    rates = {}
    for name, new in make.items():
        proj = new(probe_dim)
        t = time.perf_counter()
        proj.project(G).sum().item()
        rates[name] = probe_dim * proj_dim / (time.perf_counter() - t)
    best = max(rates, key=rates.get)
    return best, make[best](dim), rates


def on_device(lm, items) -> dict[str, torch.Tensor]:
    """``items`` collated and moved to the model's device."""
    return {k: v.to(lm.model.device) for k, v in collate(items, lm.pad_id).items()}


def moments_after_one_step(lm, items):
    """Real Adam moments: one AdamW step on a few examples."""
    params = [p for p in lm.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    label_nll(lm.model, on_device(lm, items[:4])).mean().backward()
    opt.step()
    lm.model.zero_grad()
    return (torch.cat([opt.state[p]["exp_avg"].reshape(-1) for p in params]),
            torch.cat([opt.state[p]["exp_avg_sq"].reshape(-1) for p in params]))


def less_style(lm, items, projector, moments, buffer: int = 16, keep: list | None = None):
    """The LESS loop: HF loss per example, full Adam gradient, ``buffer`` per project()."""
    params = [p for p in lm.model.parameters() if p.requires_grad]
    out, full = [], []
    for i, e in enumerate(items):
        lm.model(**on_device(lm, [e])).loss.backward()
        full.append(adam_transform(torch.cat([p.grad.reshape(-1) for p in params]), *moments))
        lm.model.zero_grad()
        if len(full) == buffer or i == len(items) - 1:
            G = torch.stack(full)
            out.append(projector.project(G))
            if keep is not None:
                keep.append(G)
            full = []
    return torch.cat(out)


def winnow_features(lm, items, projector, moments, method, dtype="fp32", max_tokens=None):
    return torch.from_numpy(project_examples(lm.model, items, projector, pad_id=lm.pad_id,
                                             moments=moments, method=method, max_batch=16,
                                             max_tokens=max_tokens, dtype=dtype))


def winnow_gradients(lm, items, moments) -> torch.Tensor:
    """(n, grad_dim) unprojected Adam gradients the way winnow computes them (hooks)."""
    out = torch.empty(len(items), grad_dim(lm.model))
    for group in batches([len(e["input_ids"]) for e in items], 4096, 16):
        blocks = per_example_grads(lm.model, on_device(lm, [items[i] for i in group]), "hooks")
        out[group] = adam_transform(torch.cat(blocks, dim=1), *moments).cpu()
    return out


class TokenCounter:
    """Tokens fed to the transformer and tokens given logits, counted by forward hooks."""

    def __init__(self, model):
        lm = causal_lm(model)
        self.fed = self.head = 0
        lm.base_model.register_forward_pre_hook(self._fed, with_kwargs=True)
        lm.get_output_embeddings().register_forward_hook(self._head)

    def _fed(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.fed += ids.numel()

    def _head(self, module, inputs, output):
        self.head += inputs[0].shape[:-1].numel()


def linear_params(model) -> tuple[int, int]:
    """(parameters of the Linear layers other than the LM head, LM-head parameters)."""
    lm = causal_lm(model)
    head = lm.get_output_embeddings()
    body = sum(m.weight.numel() for m in lm.modules()
               if isinstance(m, torch.nn.Linear) and m is not head)
    return body, head.weight.numel()


def cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1)


def gram(F: torch.Tensor) -> torch.Tensor:
    F = torch.nn.functional.normalize(F.double(), dim=1)
    return F @ F.T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="examples")
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--proj-dim", type=int, default=8192)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--buffer", type=int, default=16, help="gradients per dense project() "
                    "call (LESS: 16)")
    ap.add_argument("--max-tokens", type=int, default=None,
                    help="padded tokens per batch of the hooks variants (default: the "
                    "signal's, 2048 on CPU)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "gradients.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pool = load_pool(DATA)
    lm = load_lora_model("default", lora_r=args.lora_r, lora_alpha=4 * args.lora_r,
                         device=args.device)
    device = lm.model.device.type
    info = machine(device=device)
    dim = grad_dim(lm.model)
    idx = torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))[:args.n]
    items = tokenize_conversations(lm.tokenizer, [pool.conversations[int(i)] for i in idx],
                                   None, args.max_length, truncation="right")
    moments = moments_after_one_step(lm, items)
    generator, dense, rates = dense_projector(dim, args.proj_dim, min(args.buffer, args.n),
                                              device=device)
    sparse = Projector(dim, args.proj_dim, seed=0, kind="sparse", device=device)
    counter = TokenCounter(lm.model)
    keep: list[torch.Tensor] = []
    dense_calls = -(-args.n // args.buffer)
    variants = {
        BASELINE: (lambda: less_style(lm, items, dense, moments, args.buffer, keep),
                   2 * args.n * dim * args.proj_dim),
        LOOP: (lambda: winnow_features(lm, items, sparse, moments, "loop"), 2 * args.n * dim),
        HOOKS: (lambda: winnow_features(lm, items, sparse, moments, "hooks",
                                        max_tokens=args.max_tokens), 2 * args.n * dim),
    }
    if cpu_has_bf16() or device == "cuda":
        variants[LOOP + " bf16"] = (
            lambda: winnow_features(lm, items, sparse, moments, "loop", "bf16"), 2 * args.n * dim)
        variants[HOOKS + " bf16"] = (
            lambda: winnow_features(lm, items, sparse, moments, "hooks", "bf16",
                                    args.max_tokens), 2 * args.n * dim)
    body, head_params = linear_params(lm.model)
    times: dict[str, list[float]] = {k: [] for k in variants}
    feats, flops, tokens = {}, {}, {}
    for run in range(args.runs):
        for name, (fn, proj_flops) in variants.items():
            if name == BASELINE:
                keep.clear()
            counter.fed = counter.head = 0
            t = time.perf_counter()
            feats[name] = fn().cpu()
            times[name].append(time.perf_counter() - t)
            tokens[name] = {"fed": counter.fed, "given_logits": counter.head}
            flops[name] = 4 * (body * counter.fed + head_params * counter.head) + proj_flops
            print(f"run {run + 1}/{args.runs} {name}: {times[name][-1]:.1f} s", file=sys.stderr)

    # agreement (untimed)
    exact = torch.cat(keep).cpu()
    ours = winnow_gradients(lm, items, moments).cpu()
    grad_cos = cosines(exact, ours)
    rel_err = ((exact.double() - ours.double()).norm(dim=1) / exact.double().norm(dim=1)).max()
    loop_cos = cosines(feats[LOOP], feats[HOOKS])
    bf16_cos = {name: cosines(feats[name], feats[name[:-len(" bf16")]])
                for name in feats if name.endswith(" bf16")}
    g_exact = gram(exact)
    gram_err = {name: float((gram(f) - g_exact).abs().max()) for name, f in feats.items()}
    agreement = {"unprojected_min_cosine": float(grad_cos.min()),
                 "unprojected_max_rel_l2_error": float(rel_err),
                 "winnow_loop_vs_winnow_min_cosine": float(loop_cos.min()),
                 "bf16_vs_fp32_cosine": {k: {"median": float(c.median()), "min": float(c.min())}
                                         for k, c in bf16_cos.items()},
                 "pairwise_cosine_max_abs_error_vs_unprojected": gram_err}

    base = statistics.median(times[BASELINE])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        gflops = flops[name] / med / 1e9
        dt = "bf16" if name.endswith(" bf16") else "fp32"
        rows.append({"variant": name, "dtype": dt, "median_s": med, "runs_s": ts,
                     "features_per_s": args.n / med, "ratio_vs_less_style": base / med,
                     "tokens": tokens[name], "flops": flops[name], "gflops": gflops,
                     "fraction_of_peak": gflops / info["peak_gflops"][dt]})
    command = "python benchmarks/bench_gradients.py " + " ".join(sys.argv[1:])
    result = {"command": command, "machine": info, "args": vars(args), "grad_dim": dim,
              "linear_params": body, "head_params": head_params,
              "dense_generator": generator, "dense_generation_entries_per_s": rates,
              "dense_project_calls_per_run": dense_calls, "agreement": agreement,
              "rows": rows}
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))

    print(f"\n{header(info)}\n")
    print(f"Gradient features, SmolLM2-135M + LoRA r={args.lora_r} ({dim:,} gradient "
          f"coordinates), {args.n} examples (max length {args.max_length}), Adam features "
          f"projected to {args.proj_dim}, batches of up to "
          f"{args.max_tokens or default_grad_tokens(torch.device(device))} padded tokens; "
          f"median of {args.runs} interleaved runs\n")
    print("| variant | forward/backward | median s | features/s | ratio vs LESS-style | "
          "tokens fed | GFLOP/s | of matmul peak |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['dtype']} | {r['median_s']:.2f} | "
              f"{r['features_per_s']:.3f} | {r['ratio_vs_less_style']:.2f}x | "
              f"{r['tokens']['fed']} | {r['gflops']:.1f} | "
              f"{r['fraction_of_peak']:.0%} of {r['dtype']} |")
    print(f"\nLESS-style: {dense_calls} project() call(s) of {args.buffer} gradients per run; "
          f"dense generator used: {generator} (probe on 65536 rows: " + ", ".join(
              f"{k} {v / 1e6:.0f} M entries/s" for k, v in rates.items()) + ")")
    print(f"FLOPs: 4 x ({body / 1e6:.1f}M linear params x tokens fed + "
          f"{head_params / 1e6:.1f}M head params x tokens given logits) + projection "
          f"(dense 2 x rows x {dim} x {args.proj_dim}; sparse 2 x {dim} per example); "
          "tokens given logits: " + ", ".join(f"{k}: {v['given_logits']}"
                                              for k, v in tokens.items()))
    print(f"agreement: unprojected Adam gradients, LESS-style (HF loss, one at a time) vs "
          f"winnow (hooks, batched): min cosine {agreement['unprojected_min_cosine']:.6f}, "
          f"max relative L2 error {agreement['unprojected_max_rel_l2_error']:.1e}; "
          f"winnow-loop vs winnow features (same sketch): min cosine "
          f"{agreement['winnow_loop_vs_winnow_min_cosine']:.6f}; " + "".join(
              f"{k} vs fp32, per-example cosine median {v['median']:.5f}, min {v['min']:.5f}; "
              for k, v in agreement["bf16_vs_fp32_cosine"].items()) + "pairwise cosines between "
          "examples, max abs error against the unprojected gradients: " + ", ".join(
              f"{k}: {v:.4f}" for k, v in gram_err.items()))
    print(f"\ncommand: {command}")
    print(f"json: {out}")


if __name__ == "__main__":
    main()
