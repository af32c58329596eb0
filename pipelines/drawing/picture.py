"""What the pictures of a labelled video have in common, without matplotlib: the
:class:`Picture` (PNG bytes, size, heatmap row labels), the heat names, the heatmap's row order
and the timeline's window rows. Used by :mod:`pipelines.drawing.figures` (matplotlib) and
:mod:`pipelines.drawing.raster` (NumPy/OpenCV)."""
from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.layouts import MA52_44, SkeletonLayout

__all__ = ["HEAT_NAMES", "PART_COLOURS_RGB", "ROWS_KEY", "Picture", "body_rgb", "grouped_joint_order", "heat_name",
           "pack_rows", "read_row_labels"]

HEAT_NAMES = {
    "msm_gamma": "MSM γ (skeletal modulation scale)", "msm_beta": "MSM β (skeletal modulation shift)",
    "mtm_gamma": "MTM γ (temporal modulation scale)", "mtm_beta": "MTM β (temporal modulation shift)",
    "gate_temporal": "temporal gate", "gate_skeletal": "skeletal gate", "gate_motion": "motion gate",
    "agg_max": "aggregated feature (channel max)", "motion_energy": "motion energy (model-free)",
}
PART_COLOURS_RGB: tuple[tuple[int, int, int], ...] = (  # one per body part, in the layout's part order
    (31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75))
ROWS_KEY = "mmn:rows"  # PNG text chunk: JSON list of the heatmap's row labels, top to bottom


def body_rgb(index: int) -> tuple[int, int, int]:
    """RGB 0-255 of a body level, as on the annotated clip (−1 or out of range: 'no label' grey)."""
    from pipelines.drawing.render import BODY_LEVEL_COLOURS_BGR, NO_LABEL_BGR

    bgr = BODY_LEVEL_COLOURS_BGR[index] if 0 <= index < len(BODY_LEVEL_COLOURS_BGR) else NO_LABEL_BGR
    return (bgr[2], bgr[1], bgr[0])


def heat_name(source: str) -> str:
    return HEAT_NAMES.get(source, source)


@dataclass(frozen=True)
class Picture:
    """A rendered figure: PNG bytes, pixel size, and (heatmaps) the row labels top to bottom."""

    png: bytes
    width: int
    height: int
    row_labels: tuple[str, ...] = ()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.png)
        return path

    def array(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB."""
        from PIL import Image

        with Image.open(io.BytesIO(self.png)) as im:
            return np.asarray(im.convert("RGB"))


def read_row_labels(png: bytes) -> list[str]:
    """The row labels stored in a heatmap PNG by :func:`joint_heatmap` ([] when absent)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        text = im.info.get(ROWS_KEY)
    return json.loads(text) if text else []


def pack_rows(spans: Sequence[tuple[float, float]], max_rows: int = 8) -> list[int]:
    """A row per (start, end) span so that spans in one row do not overlap (first fit, in
    order); beyond ``max_rows`` rows the spans wrap around and may overlap."""
    ends: list[float] = []
    rows = []
    for i, (start, end) in enumerate(spans):
        row = next((r for r, e in enumerate(ends) if e <= start + 1e-9), None)
        if row is None:
            if len(ends) < max_rows:
                ends.append(end)
                row = len(ends) - 1
            else:
                row = i % max_rows
        ends[row] = end
        rows.append(row)
    return rows


def grouped_joint_order(layout: SkeletonLayout = MA52_44) -> tuple[list[int], list[tuple[str, int, int]]]:
    """Joint ids in body-part order, and each part's (name, first row, row count)."""
    order: list[int] = []
    groups = []
    for name, joints in layout.parts:
        groups.append((name, len(order), len(joints)))
        order.extend(joints)
    return order, groups
