"""Shared test fixtures: paths into ../shared (read-only real data) and the golden vectors."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
GOLDEN_DIR = SHARED / "fixtures" / "mmn_ma52"
VIDEOS_DIR = SHARED / "fixtures" / "videos"
MSR_PKL = SHARED / "fixtures" / "msr_action3d_2d.pkl"

# CI sets MMN_NO_SKIP=1: there every optional piece (mmpose, chromium, the shared fixtures) is
# installed on purpose, so a test that would skip is a broken setup and must fail, not vanish.
NO_SKIP = os.environ.get("MMN_NO_SKIP") == "1"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if NO_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"MMN_NO_SKIP=1 but the test skipped: {reason}"
    return report


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    """The golden vectors made with the authors' code: raw_0..5, joint, bone, index_t, logits_joint."""
    with np.load(GOLDEN_DIR / "vectors.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def golden_weights() -> Path:
    return GOLDEN_DIR / "weights.pt"


@pytest.fixture(scope="session")
def golden_raw(golden) -> list[np.ndarray]:
    return [golden[f"raw_{i}"] for i in range(6)]
