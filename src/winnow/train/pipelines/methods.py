"""The training-dependent methods: cherry, small2large, diverse-evol, mods."""

from __future__ import annotations

import numpy as np

from winnow.registry import get_selector
from winnow.train.pipelines.base import Outcome, PipelineContext, register_pipeline


def _lm_params(ctx: PipelineContext) -> dict:
    p = ctx.params
    return {"template": p.get("template", "alpaca"), "max_length": p.get("max_length", 512),
            "dtype": p.get("dtype", "auto")}


@register_pipeline("cherry")
def cherry(ctx: PipelineContext) -> Outcome:
    """Cherry LLM: pre-experienced sampling (recipe ``cherry-pre``) → train the
    pre-experienced model on it → IFD with that model (recipe ``ifd``) → keep the top."""
    p = ctx.params
    lm = _lm_params(ctx)
    pre = ctx.recipe("cherry-pre", min(int(p["pre_budget"]), len(ctx.pool)),
                     model=p["model"], n_clusters=p["n_clusters"], **lm)
    run = ctx.train("pre_experienced", pre.selected)
    model = ctx.merged(run, "pre_experienced")
    final = ctx.recipe("ifd", ctx.budget, model=model, **lm)
    reasons = {i: f.split(": ", 1)[-1] for i, f in enumerate(final.fate) if f != "selected"}
    return Outcome(final.selected, final.selected_scores,
                   {k: final.columns[k] for k in final.scalar_columns()},
                   [{"step": "pre-experienced sampling", "out": len(pre.selected)},
                    {"step": "train pre-experienced model", "steps": run.global_step,
                     "train_loss": run.train_loss},
                    {"step": "ifd with the pre-experienced model", "in": len(ctx.pool),
                     "out": len(final.selected), "stages": [
                         {k: s[k] for k in ("kind", "in", "out")} for s in final.stages]}],
                   reasons)


def learning_percentage(ppl: np.ndarray, mode: str = "exact") -> np.ndarray:
    """LP(1) from perplexities ``ppl`` (epochs + 1, n): P_0 before training, P_i after
    epoch i. ``exact``: (P0 − P1) / (P0 − Pn); ``approx``: (P0 − P1) / P0."""
    p0, p1, pn = ppl[0], ppl[1], ppl[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = (p0 - p1) / (p0 - pn) if mode == "exact" else (p0 - p1) / p0
    return np.where(np.isfinite(lp), lp, np.nan)


@register_pipeline("small2large")
def small2large(ctx: PipelineContext) -> Outcome:
    """Small2Large: fine-tune a small model on the pool for ``epochs`` epochs, scoring every
    example's response perplexity before and after each epoch; LP(1) (exact or approx);
    k-means (seed ``cluster_seed``) on MiniLM embeddings of the ``embed_text`` text; in each
    cluster keep the lowest-LP share."""
    p = ctx.params
    lm = _lm_params(ctx)
    n = len(ctx.pool)
    epochs = int(p["epochs"])
    cfg = ctx.train_config("small")
    per_epoch = -(-n // (cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps))
    run = ctx.train("small", np.arange(n), num_train_epochs=float(epochs), save_steps=per_epoch)
    models = [p["model"]]
    for k, ckpt in enumerate(run.checkpoints[:epochs], start=1):
        folder = ctx.work_dir / f"epoch{k}-merged"
        if not (folder / "config.json").is_file():
            from winnow.train.export import export_merged

            export_merged(ckpt, folder, base=p["model"])
        models.append(str(folder))
    ppl = np.stack([np.asarray(ctx.signal("lm_scores", model=m, **lm)["ppl"], dtype=np.float64)
                    for m in models])
    lp = learning_percentage(ppl, p["lp"])
    X = np.asarray(ctx.signal("embedding", model=p["embedder"], text=p["embed_text"])
                   ["embedding"])
    sel = get_selector("kmeans", n_clusters=int(p["n_clusters"]), quota="proportional",
                       rule="bottom", redistribute=True, minibatch=bool(p["minibatch"]),
                       random_state=int(p["cluster_seed"])).select(
        ctx.budget, X=X, scores=np.nan_to_num(lp, nan=np.inf))
    columns = {f"ppl_{k}": ppl[k] for k in range(len(ppl))}
    columns.update(lp=lp, lp_approx=learning_percentage(ppl, "approx"),
                   lp_exact=learning_percentage(ppl, "exact"))
    return Outcome(sel.indices, lp[sel.indices], columns,
                   [{"step": f"train small model {epochs} epochs", "steps": run.global_step},
                    {"step": "perplexity per epoch", "models": len(models)},
                    {"step": f"kmeans lowest LP(1) {p['lp']}", "out": len(sel.indices),
                     "clusters": sel.trace.get("n_clusters")}])


@register_pipeline("diverse-evol")
def diverse_evol(ctx: PipelineContext) -> Outcome:
    """DiverseEvol: start from ``init_size`` random examples; each round train on the
    current selection (from the base model), embed the pool with that model's mean last
    hidden state, and add ``step_size`` examples by k-center greedy from the selection."""
    p = ctx.params
    n = len(ctx.pool)
    rng = np.random.default_rng(ctx.seed)
    chosen = list(rng.choice(n, size=min(int(p["init_size"]), ctx.budget, n), replace=False))
    steps = [{"step": "random seed set", "out": len(chosen)}]
    round_ = 0
    while len(chosen) < ctx.budget:
        round_ += 1
        run = ctx.train(f"round{round_}", chosen)
        model = ctx.merged(run, f"round{round_}")
        X = np.asarray(ctx.signal("lm_embedding", model=model, pooling="mean",
                                  text=p["text"], max_length=p.get("max_length", 512))
                       ["embedding"])
        add = min(int(p["step_size"]), ctx.budget - len(chosen))
        new = get_selector("kcenter", random_state=ctx.seed).select(
            add, X=X, initial=np.asarray(chosen)).indices
        chosen.extend(int(i) for i in new)
        steps.append({"step": f"round {round_}", "train_steps": run.global_step,
                      "added": len(new), "total": len(chosen)})
        if len(new) == 0:
            break
    order = np.asarray(chosen, dtype=np.int64)
    rounds = np.full(n, np.nan)
    rounds[order] = [0] * min(int(p["init_size"]), len(order)) + [
        1 + k // int(p["step_size"]) for k in range(len(order) - min(int(p["init_size"]),
                                                                      len(order)))]
    return Outcome(order, rounds[order], {"round_added": rounds}, steps)


def _reward_scores(path: str, instructions: list[str], responses: list[str],
                   batch_size: int = 8) -> np.ndarray:
    """Scores of a sequence-classification reward model on (instruction, response) pairs."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from winnow.models.device import resolve_device

    device = resolve_device("auto")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
        model.config.pad_token_id = tok.pad_token_id
    out = []
    with torch.no_grad():
        for a in range(0, len(instructions), batch_size):
            enc = tok(instructions[a:a + batch_size], responses[a:a + batch_size],
                      truncation=True, max_length=512, padding=True,
                      return_tensors="pt").to(device)
            out.append(model(**enc).logits[:, 0].float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _similarity(ctx: PipelineContext, a: list[str], b: list[str]) -> np.ndarray:
    """Cosine similarity of MiniLM embeddings of paired texts."""
    from winnow.models.embedder import load_embedder

    emb = load_embedder(ctx.params["embedder"])
    return (emb.encode(a) * emb.encode(b)).sum(axis=1)


@register_pipeline("mods")
def mods(ctx: PipelineContext) -> Outcome:
    """MoDS: quality filter (reward model or a score column, ≥ ``quality_threshold``) →
    k-center seed set → train a seed model → generate answers to the other high-quality
    instructions (beam search: ``num_beams``, ``max_new_tokens``) → keep those whose
    answers score below ``necessity_threshold`` ("necessary") → k-center among them to fill
    the budget → seed ∪ necessary."""
    from winnow.data.pool import last_exchange
    from winnow.evaluate.target import generate_answers

    p = ctx.params
    n = len(ctx.pool)
    pairs = [last_exchange(c) for c in ctx.pool.conversations]
    if p.get("reward_model"):
        quality = _reward_scores(p["reward_model"], [q for q, _ in pairs],
                                 [a for _, a in pairs])
    elif p.get("score_column"):
        quality = np.asarray(ctx.pool.extra[p["score_column"]], dtype=np.float64)
    else:
        raise ValueError("mods needs reward_model (a sequence-classification model) or "
                         "score_column (a per-example score field of the pool)")
    good = np.flatnonzero(np.nan_to_num(quality, nan=-np.inf) >= float(p["quality_threshold"]))
    reasons = {int(i): f"quality {quality[i]:.3g} < {p['quality_threshold']}"
               for i in np.setdiff1d(np.arange(n), good)}
    X = np.asarray(ctx.signal("embedding", model=p["embedder"], text="instruction")
                   ["embedding"])
    seed_size = min(int(p["seed_size"]), ctx.budget, len(good))
    seed = good[get_selector("kcenter", random_state=ctx.seed).select(
        seed_size, X=X[good]).indices]
    run = ctx.train("seed", seed)
    rest = np.setdiff1d(good, seed)
    prompts = [[t for t in ctx.pool.conversations[i] if t["role"] != "assistant"]
               for i in rest]
    answers = generate_answers(run.model, run.tokenizer, run.template, prompts,
                               int(p["max_new_tokens"]), num_beams=int(p["num_beams"]))
    if p.get("reward_model"):
        necessity = _reward_scores(p["reward_model"], [pairs[i][0] for i in rest], answers)
        scorer = "reward"
    else:  # no reward model: how close the seed model's answer is to the reference
        necessity = _similarity(ctx, answers, [pairs[i][1] for i in rest])
        scorer = "similarity to reference"
    threshold = p["necessity_threshold"]
    if threshold is None:
        threshold = 0.0 if p.get("reward_model") else 0.5
    necessary = rest[necessity < float(threshold)]
    room = ctx.budget - len(seed)
    if len(necessary) > room:
        pick = get_selector("kcenter", random_state=ctx.seed).select(
            room, X=X[necessary]).indices
        necessary = necessary[pick]
    for i in rest:
        reasons.setdefault(int(i), "the seed model already answers it well")
    chosen = np.concatenate([seed, necessary]).astype(np.int64)
    necessity_col = np.full(n, np.nan)
    necessity_col[rest] = necessity
    return Outcome(chosen, None, {"quality": quality, "necessity": necessity_col},
                   [{"step": "quality filter", "in": n, "out": len(good)},
                    {"step": "k-center seed", "out": len(seed)},
                    {"step": "train seed model", "steps": run.global_step},
                    {"step": f"generate and score ({scorer})", "in": len(rest),
                     "out": len(necessary)}], reasons)
