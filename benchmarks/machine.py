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


def machine_info() -> dict:
    """CPU, logical CPUs, platform, Python, and the 1-minute load average now (other work on
    the cores slows every figure down)."""
    return {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
