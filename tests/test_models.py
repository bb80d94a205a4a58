"""Device/dtype choice and causal-LM loading (the built-in SmolLM2 converted from GGUF)."""

from __future__ import annotations

import json
import time

import pytest
import torch

from winnow.models import causal_lm
from winnow.models.causal_lm import (
    default_model_dir,
    load_causal_lm,
    model_identity,
    weights_sha256,
)
from winnow.models.device import cpu_has_bf16, resolve_device, resolve_dtype


def test_device_choice(monkeypatch):
    monkeypatch.delenv("WINNOW_DEVICE", raising=False)
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    monkeypatch.setenv("WINNOW_DEVICE", "cpu")
    assert resolve_device().type == "cpu"
    assert resolve_device("meta").type == "meta"  # an argument wins over the env var


def test_dtype_choice():
    cpu = torch.device("cpu")
    assert resolve_dtype("fp32", cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_dtype("fp16", cpu) == torch.float16
    assert resolve_dtype("auto", cpu) == (torch.bfloat16 if cpu_has_bf16() else torch.float32)
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("int3", cpu)


def test_load_default_model():
    lm = load_causal_lm("default", dtype="fp32")
    assert not lm.model.training
    assert lm.dtype == torch.float32 and next(lm.model.parameters()).dtype == torch.float32
    assert lm.tokenizer.pad_token_id is not None and lm.tokenizer.padding_side == "right"
    assert not hasattr(lm.model.config, "quantization_config")
    assert (default_model_dir() / "config.json").is_file()
    assert lm.identity == model_identity("default")
    assert len(lm.identity["sha256"]) == 64
    # converted once: later loads read safetensors
    t = time.perf_counter()
    again = load_causal_lm("default", dtype="bf16")
    assert time.perf_counter() - t < 20
    assert again.dtype == torch.bfloat16 and again.identity == lm.identity
    # the model works: a sensible next-token distribution
    ids = lm.tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        top = lm.model(ids).logits[0, -1].argmax().item()
    assert "Paris" in lm.tokenizer.decode([top])


def test_load_local_path_identity(tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for f in default_model_dir().iterdir():
        (folder / f.name).symlink_to(f)
    lm = load_causal_lm(str(folder), dtype="fp32")
    assert lm.identity["path"] == str(folder.resolve())
    assert lm.identity["sha256"] == model_identity("default")["sha256"]


def test_weights_hash_is_memoised_and_tracks_changes(tmp_path, monkeypatch):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights v1")
    (folder / "config.json").write_text("{}")
    cache = tmp_path / "cache"
    first = weights_sha256(folder, cache)
    memo = json.loads((cache / "models" / "hashes.json").read_text())
    assert list(memo) == [str((folder / "model.safetensors").resolve())]

    calls = []
    real = causal_lm._sha256
    monkeypatch.setattr(causal_lm, "_sha256", lambda p: calls.append(p) or real(p))
    assert weights_sha256(folder, cache) == first and calls == []
    (folder / "model.safetensors").write_bytes(b"weights v2, longer")
    assert weights_sha256(folder, cache) != first and len(calls) == 1
    with pytest.raises(FileNotFoundError, match="no weight files"):
        weights_sha256(tmp_path / "cache", cache)
