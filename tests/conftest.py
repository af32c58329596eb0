"""Shared test fixtures: paths into ../shared (read-only real data) and the golden vectors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
GOLDEN_DIR = SHARED / "fixtures" / "mmn_ma52"
VIDEOS_DIR = SHARED / "fixtures" / "videos"
MSR_PKL = SHARED / "fixtures" / "msr_action3d_2d.pkl"


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
