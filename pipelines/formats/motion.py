"""The motion table (``KEY.motion.csv``): per frame, each body part's skeleton heat and pixel
motion energy."""
from __future__ import annotations

import numpy as np

from core.csv_table import csv_text
from core.layouts import SkeletonLayout

__all__ = ["motion_csv_text"]


def motion_csv_text(motion_energy: np.ndarray, region_motion: np.ndarray | None, fps: float,
                    layout: SkeletonLayout) -> str:
    """Per frame: each body part's skeleton heat (mean over its joints of the (N, V)
    ``motion_energy``, torso lengths per second) and pixel motion energy ((N, P)
    ``region_motion``, grey levels per pixel; empty where not measured or the part is absent)."""
    parts = [name for name, _ in layout.parts]
    heat = motion_energy
    part_heat = np.stack([heat[:, list(js)].mean(axis=1) for _, js in layout.parts], axis=1)
    pixels = region_motion
    cols = [p.replace(" ", "_") for p in parts]
    header = ["frame", "time_s"] + [f"heat_{p}" for p in cols] + [f"pixels_{p}" for p in cols]
    rows = []
    for f in range(len(heat)):
        px = ["" if pixels is None or not np.isfinite(v) else f"{v:.4f}" for v in
              (pixels[f] if pixels is not None else [np.nan] * len(parts))]
        rows.append([f, f"{f / fps:.4f}"] + [f"{v:.5f}" for v in part_heat[f]] + px)
    return csv_text(header, rows)
