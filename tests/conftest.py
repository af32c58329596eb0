"""Shared test fixtures: the real data (read-only, skipped when missing), the golden vectors,
and one labelled folder of the real clips for every test that needs one.

Paths come from :mod:`tests.data`; a test that needs the real data asks for a fixture here
(``golden_weights``, ``golden``, ``msr_pkl``, ``class_table`` …), which skips it with a
message naming ``MMN_SHARED`` when the data is missing. Every other test runs without it.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.cli import run_cli
from tests.data import (
    CLASS_TABLE,
    GOLDEN_DIR,  # noqa: F401  (GOLDEN_DIR, ROOT, SHARED, VIDEOS_DIR: older files import them from here)
    GOLDEN_VECTORS,
    GOLDEN_WEIGHTS,
    MSR_PKL,
    ROOT,  # noqa: F401
    SHARED,  # noqa: F401
    VIDEOS_DIR,  # noqa: F401
    shared,
)
from tests.media import clips_and_broken_files

pytest_plugins = ["tests.stream_server"]  # the `serve` fixture: a clip over HTTP on 127.0.0.1

# CI sets MMN_NO_SKIP=1: there every optional piece (mmpose, chromium, the shared fixtures) is
# installed on purpose, so a test that would skip is a broken setup and must fail, not vanish.
NO_SKIP = os.environ.get("MMN_NO_SKIP") == "1"


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if NO_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        _no_skip(report)
    return report


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Tests that pin torch's thread count must not change it for the tests after them."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- the real data


@pytest.fixture(scope="session")
def golden_weights() -> Path:
    """The authors' MA-52 joint checkpoint (real data)."""
    return shared(GOLDEN_WEIGHTS)


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    """The golden vectors made with the authors' code: raw_0..5, joint, bone, index_t, logits_joint."""
    with np.load(shared(GOLDEN_VECTORS)) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def golden_raw(golden) -> list[np.ndarray]:
    return [golden[f"raw_{i}"] for i in range(6)]


@pytest.fixture(scope="session")
def msr_pkl() -> Path:
    """pyskl's MSR Action3D 2-D skeletons (real data)."""
    return shared(MSR_PKL)


@pytest.fixture(scope="session")
def class_table() -> Path:
    """The MA-52 class table (TSV: index, code, name, body_index, …) of the real data."""
    return shared(CLASS_TABLE)


# --------------------------------------------------------------------------- one labelled folder


@dataclass(frozen=True)
class LabelledRun:
    """``python -m pipelines.video_to_labels inputs --out out --weights GOLDEN --export-clips
    --device cpu`` as run once for the session: do not change ``out`` (copy it first)."""

    inputs: Path                         # the real clips, three broken files and a readme.txt
    out: Path
    result: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def clip_folder(tmp_path_factory) -> Path:
    """The bundled real clips beside ``cut_short.mp4``, ``empty.mp4``, ``notes.mp4`` (see
    :func:`tests.media.clips_and_broken_files`) and a ``readme.txt`` (not a video suffix)."""
    folder = clips_and_broken_files(tmp_path_factory.mktemp("clip-folder"))
    (folder / "readme.txt").write_text("ignored: not a video suffix\n")
    return folder


@pytest.fixture(scope="session")
def labelled(clip_folder, golden_weights, tmp_path_factory) -> LabelledRun:
    """The folder job with the golden checkpoint on :func:`clip_folder`, once per session."""
    out = tmp_path_factory.mktemp("labelled")
    res = run_cli("pipelines.video_to_labels", clip_folder, "--out", out, "--weights", golden_weights,
                  "--export-clips", "--device", "cpu", timeout=900)
    return LabelledRun(clip_folder, out, res)
