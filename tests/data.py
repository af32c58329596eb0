"""Where the tests' inputs are: the one place that names them.

- The real data lives outside the repository (it is not redistributed): ``MMN_SHARED`` names
  the folder, by default ``../shared`` beside the checkout. It holds ``fixtures/mmn_ma52/``
  (a checkpoint in the authors' format and the logits their code gives),
  ``fixtures/msr_action3d_2d.pkl`` (pyskl MSR Action3D) and ``docs/ma52-classes.tsv``. A test
  reaches it only through :func:`shared` (or a fixture of ``conftest.py`` that calls it), which
  skips the test, naming ``MMN_SHARED`` and the missing path, when the data is not there.
- The three real MA-52 clips are bundled with the project (``examples/videos``, the same files
  as ``fixtures/videos`` of the real data): :data:`VIDEOS_DIR`, always present.

Nothing here touches the file system at import, so collection never fails for missing data.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

__all__ = ["CLASS_TABLE", "GOLDEN_DIR", "GOLDEN_VECTORS", "GOLDEN_WEIGHTS", "LABELS_SCHEMA", "MSR_PKL", "ROOT",
           "SHARED", "VIDEOS_DIR", "WILD_DIR", "shared"]

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MMN_SHARED") or ROOT.parent / "shared").resolve()
GOLDEN_DIR = SHARED / "fixtures" / "mmn_ma52"
GOLDEN_WEIGHTS = GOLDEN_DIR / "weights.pt"      # the authors' MA-52 joint checkpoint
GOLDEN_VECTORS = GOLDEN_DIR / "vectors.npz"     # raw_0..5, joint, bone, index_t, logits_joint
MSR_PKL = SHARED / "fixtures" / "msr_action3d_2d.pkl"
CLASS_TABLE = SHARED / "docs" / "ma52-classes.tsv"
WILD_DIR = SHARED / "fixtures" / "wild"         # low-resolution non-interview clips (README.md there)

VIDEOS_DIR = ROOT / "examples" / "videos"       # 0030_01_0002 (75 frames), 0019_02_0078 (50), 0010_02_0101 (47)
LABELS_SCHEMA = ROOT / "pipelines" / "formats" / "labels.schema.json"


def shared(path: Path) -> Path:
    """``path`` (one of the real-data paths above) when it exists; else the calling test, or
    every test using the calling fixture, is skipped with a message naming ``MMN_SHARED``."""
    if not path.exists():
        pytest.skip(f"needs the real test data: {path} is missing (set MMN_SHARED to the folder holding "
                    f"fixtures/ and docs/; default ../shared beside the checkout)")
    return path
