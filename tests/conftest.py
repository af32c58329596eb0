"""Shared test fixtures: the real data (read-only) and the golden vectors.

The data lives outside the repository (it is not redistributed): ``MMN_SHARED`` names the
folder, by default ``../shared`` beside the checkout. It holds ``fixtures/mmn_ma52/``
(a checkpoint in the authors' format and the logits their code gives), ``fixtures/videos/``
(real MA-52 clips), ``fixtures/msr_action3d_2d.pkl`` (pyskl MSR Action3D) and
``docs/ma52-classes.tsv``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MMN_SHARED") or ROOT.parent / "shared").resolve()
GOLDEN_DIR = SHARED / "fixtures" / "mmn_ma52"
VIDEOS_DIR = SHARED / "fixtures" / "videos"
MSR_PKL = SHARED / "fixtures" / "msr_action3d_2d.pkl"

# CI sets MMN_NO_SKIP=1: there every optional piece (mmpose, chromium, the shared fixtures) is
# installed on purpose, so a test that would skip is a broken setup and must fail, not vanish.
NO_SKIP = os.environ.get("MMN_NO_SKIP") == "1"


REQUIRED_FIXTURES = [GOLDEN_DIR / "weights.pt", GOLDEN_DIR / "vectors.npz", VIDEOS_DIR, MSR_PKL]


def pytest_sessionstart(session) -> None:
    missing = [str(p) for p in REQUIRED_FIXTURES if not p.exists()]
    if missing:
        raise pytest.UsageError(f"test data missing: {', '.join(missing)}. Set MMN_SHARED to the folder holding "
                                f"fixtures/ (default: ../shared beside the checkout, now {SHARED}).")


def _no_skip(report) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"MMN_NO_SKIP=1 but the test skipped: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """Module-level skips (``importorskip``, ``skip(allow_module_level=True)``) fail too."""
    report = yield
    if NO_SKIP and report.skipped:
        _no_skip(report)
    return report


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Tests that pin torch's thread count must not change it for the tests after them."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if NO_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        _no_skip(report)
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
