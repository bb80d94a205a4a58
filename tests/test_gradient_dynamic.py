"""The less and cluster-ucb dynamic selectors on the live model and optimizer (SmolLM2 LoRA,
tokenized as winnow trains), called the way the dynamic-selection callback calls them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from winnow.data import load_pool
from winnow.data.tokenize import Collator, tokenize_pool
from winnow.models.lora import optimizer_moments
from winnow.train.dynamic.base import SelectionState, get_dynamic_selector
from winnow.train.dynamic.log import SelectionLog
from winnow.train.dynamic.schedule import Phase
from winnow.train.lora import build_lora_model


@pytest.fixture(scope="module")
def setup(shared_data, tmp_path_factory):
    pool = load_pool(shared_data / "mixed_pool.jsonl").subset([1, 5, 2200, 2500, 2800, 2300,
                                                              3200, 3210])
    target = load_pool(shared_data / "targets" / "mmlu_heldout_subjects.jsonl").subset([0, 7])
    model, tok, _ = build_lora_model("default", lora_rank=2, lora_alpha=8, lora_dropout=0.1,
                                     lora_target="q_proj,v_proj", device="cpu")
    data = tokenize_pool(pool, tok, "chat", 192)
    collator = Collator(tok.pad_token_id)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model(**collator([data[0], data[1]])).loss.backward()
    opt.step()
    opt.zero_grad()
    work = tmp_path_factory.mktemp("dyn")
    state = SelectionState(phase=Phase(2, 1, "update", 0, 1), update_times=1, seed=0,
                           log=SelectionLog(work), work_dir=work, dataset=data,
                           collator=collator, device=torch.device("cpu"),
                           extras={"eval_pool": target, "template": "chat", "cutoff_len": 192})
    return pool, model, tok, opt, state


def test_optimizer_moments_follow_parameter_order(setup):
    _, model, _, opt, _ = setup
    m, v = optimizer_moments(model, opt)
    params = [p for p in model.parameters() if p.requires_grad]
    assert m.numel() == sum(p.numel() for p in params) and torch.all(v >= 0)
    assert optimizer_moments(model, torch.optim.AdamW(params)) is None  # no step yet


def test_less_and_cluster_ucb_dynamic(setup):
    pool, model, tok, opt, state = setup
    model.train()
    less = get_dynamic_selector("less", proj_dim=64).select(model, tok, pool, 2, 3, opt, state)
    assert model.training  # restored
    assert len(less.indices) == 3 and np.all(np.diff(less.scores) <= 0)
    ucb = get_dynamic_selector("cluster-ucb", proj_dim=64, n_clusters=2,
                               budget_fraction=0.5).select(model, tok, pool, 2, 3, opt, state)
    assert ucb.trace["scored"] == 4 and len(ucb.indices) == 3
    with pytest.raises(ValueError, match="target"):
        bare = SelectionState(**{**state.__dict__, "extras": {}})
        get_dynamic_selector("less").select(model, tok, pool, 2, 3, opt, bare)


def test_get_params_gives_every_init_parameter_and_names_are_checked():
    """scikit-learn style: the effective value of every ``__init__`` parameter (the class's
    and its bases'), defaults included; the registry checks the names."""
    params = get_dynamic_selector("nice", proj_dim=64, mc_samples=2, save_interval=16).get_params()
    assert (params["proj_dim"], params["mc_samples"], params["save_interval"]) == (64, 2, 16)
    assert (params["gradient_type"], params["top_p"], params["max_batch"]) == ("adam", 0.95, 16)
    dataflex_less = {"cache_dir": "out", "gradient_type": "adam", "proj_dim": 4096, "seed": 123,
                     "save_interval": 16}
    assert get_dynamic_selector("less", **dataflex_less).get_params()["cache_dir"] == "out"
    assert get_dynamic_selector("loss").get_params()["batch_size"] == 8
    with pytest.raises(ValueError, match="focus_wieght"):
        get_dynamic_selector("loss", focus_wieght=2.0)
    with pytest.raises(KeyError, match="delta-loss"):
        get_dynamic_selector("delta_los")
