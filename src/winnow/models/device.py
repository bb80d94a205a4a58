"""Device and dtype choice for model work.

Device: an explicit argument wins, then ``$WINNOW_DEVICE``, then CUDA when available,
else CPU. Dtype ``"auto"``: bfloat16 where the hardware runs it natively (CUDA with bf16
support; CPUs with AVX512-BF16 or AMX), else float32.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch

DEVICE_ENV_VAR = "WINNOW_DEVICE"

DTYPES = {
    "fp32": torch.float32, "float32": torch.float32,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16,
}


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device to run on.

    ``None``/``"auto"``: ``$WINNOW_DEVICE`` if set, else ``cuda`` when available, else ``cpu``.
    """
    if isinstance(device, torch.device):
        return device
    if device in (None, "", "auto"):
        device = os.environ.get(DEVICE_ENV_VAR) or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """CPU feature flags from ``/proc/cpuinfo`` (empty where it is not readable)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 matrix products natively (AVX512-BF16 or AMX-BF16)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The torch dtype for ``dtype`` ("auto", "fp32", "bf16", "fp16" or a torch dtype)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "", "auto"):
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        if device.type == "cpu":
            return torch.bfloat16 if cpu_has_bf16() else torch.float32
        return torch.float32
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use auto, fp32, bf16 or fp16") from None


def dtype_name(dtype: torch.dtype) -> str:
    """Short name of a torch dtype: "fp32", "bf16", "fp16"."""
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def autocast(device: str | torch.device,
             dtype: str | torch.dtype) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward passes run inside: ``torch.autocast`` to ``dtype``
    (``"auto"`` resolved for ``device``), or nothing for float32. Weights keep their dtype;
    backward passes follow the forward's dtypes."""
    device = resolve_device(device)
    dt = resolve_dtype(dtype, device)
    if dt == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dt)
