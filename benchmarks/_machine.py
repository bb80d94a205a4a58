"""The machine a benchmark ran on, printed above its table and stored in its JSON.

``machine()`` returns the CPU model name, its SIMD/matrix flags that matter for fp32 and
bf16 matmuls, the logical CPU count, torch's version and thread count, the load average,
and this machine's measured dense matmul peak: the median GFLOP/s (2·n³ FLOPs) of
``repeats`` n×n×n ``torch.matmul`` calls after one untimed call, in fp32 and in bf16, on
the device the benchmark runs on (``device="cuda"``: the GPU's name too, n 8192). On a
CPU without AVX512-BF16 or AMX, bf16 products are emulated (hundreds of times slower than
fp32): the bf16 peak is then measured at n 256 and marked emulated, and benchmarks leave
out their bf16 variants (dtype ``auto`` runs fp32 there). Benchmarks divide their own FLOP
rates by these peaks. ``header(info)`` formats it.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_model_and_flags() -> tuple[str, set[str]]:
    """CPU model name and flag set from /proc/cpuinfo ("unknown", {} elsewhere)."""
    model, flags = platform.processor() or platform.machine() or "unknown", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            break
    return model, flags


def matmul_gflops(dtype, n: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """Median GFLOP/s of ``repeats`` n×n×n matmuls in ``dtype`` (one untimed call first)."""
    import torch

    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if a.is_cuda else (lambda: None)
    a @ b
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def machine(peak: bool = True, n: int = 2048, repeats: int = 5, device: str = "cpu") -> dict:
    """CPU, flags, torch, the GPU (``device`` cuda) and (``peak``) the measured fp32 and
    bf16 matmul GFLOP/s on ``device``."""
    import torch

    from winnow.models.device import cpu_has_bf16

    model, flags = cpu_model_and_flags()
    info = {"cpu": model, "cpus": os.cpu_count(),
            "flags": {f: f in flags for f in FLAGS},
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}
    device = str(device)
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
        n = max(n, 8192)
    native = device.startswith("cuda") or cpu_has_bf16()
    info["bf16_native"] = native
    if peak:
        info["matmul"] = f"{n}^3 on {device}, median of {repeats}"
        info["peak_gflops"] = {"fp32": matmul_gflops(torch.float32, n, repeats, device),
                               "bf16": matmul_gflops(torch.bfloat16, n if native else 256,
                                                     repeats, device)}
    return info


def header(info: dict) -> str:
    """Two lines for above a table: CPU and flags, then the matmul peaks."""
    have = " ".join(f for f, on in info["flags"].items() if on) or "none"
    lack = " ".join(f for f, on in info["flags"].items() if not on) or "none"
    lines = [f"CPU: {info['cpu']} ({info['cpus']} logical CPUs; has {have}; lacks {lack}); "
             f"torch {info['torch']}, {info['torch_threads']} threads; load average "
             f"{' '.join(str(x) for x in info['load_average'])}"]
    if "gpu" in info:
        lines.append(f"GPU: {info['gpu']}")
    if "peak_gflops" in info:
        p = info["peak_gflops"]
        bf16 = "" if info.get("bf16_native", True) else " (emulated, 256^3)"
        lines.append(f"measured matmul peak ({info['matmul']}): fp32 {p['fp32']:.1f} GFLOP/s, "
                     f"bf16 {p['bf16']:.1f} GFLOP/s{bf16}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(header(machine()))
