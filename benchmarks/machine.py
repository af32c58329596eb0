"""What the benchmarks ran on, for their JSON: CPU model, core count, platform, versions."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sgemm_gflops(n: int = 512, repeats: int = 20) -> float:
    """Single-core float32 matrix-product speed, GFLOP/s (best of ``repeats``): a calibration
    measured in the same run as the figures, so readers can scale them to their machine
    (machines reporting the same CPU name differ here by up to ~2.5x)."""
    import time

    import numpy as np
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), np.float32), rng.random((n, n), np.float32)
    best = float("inf")
    with threadpool_limits(1):
        for _ in range(repeats):
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def machine_info() -> dict:
    """CPU, logical CPUs, platform, Python, the 1-minute load average now (other work on the
    cores slows every figure down) and the single-core SGEMM calibration."""
    return {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "sgemm_gflops_1core": round(sgemm_gflops(), 1)}
