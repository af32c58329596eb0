"""Measurements of a skeleton track, used to choose the smoothing defaults and to test them.

All take keypoints (N, V, 2) in pixels (or a 1-D signal) and return floats.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def jitter(keypoints: np.ndarray, joints: Sequence[int]) -> float:
    """Mean frame-to-frame displacement (px) of ``joints``: for joints that should be still,
    all of it is jitter."""
    return float(np.linalg.norm(np.diff(keypoints[:, list(joints)], axis=0), axis=-1).mean())


def amplitude(signal: np.ndarray) -> float:
    """Extent of a motion: 5th to 95th percentile (max − min would be set by one jitter spike)."""
    return float(np.percentile(signal, 95) - np.percentile(signal, 5))


def lag(reference: np.ndarray, signal: np.ndarray, max_shift: float = 3.0, step: float = 0.1) -> float:
    """Delay (frames, positive = late) of ``signal`` behind ``reference``: the sub-frame shift
    that best correlates them (ends trimmed)."""
    t = np.arange(len(reference), dtype=np.float64)
    trim = int(np.ceil(max_shift)) + 1
    shifts = np.arange(-max_shift, max_shift + step / 2, step)
    corr = [np.corrcoef(reference[trim:-trim], np.interp(t + s, t, signal)[trim:-trim])[0, 1]
            for s in shifts]
    return float(shifts[int(np.argmax(corr))])


def part_motion_energy(keypoints: np.ndarray, joints: Sequence[int], vertical_only: bool = False) -> float:
    """Mean squared frame-to-frame velocity (px²/frame²) of the centroid of ``joints``.

    The centroid keeps the part's coherent motion (a nod moves every head joint together)
    and averages out estimator noise that differs from joint to joint.
    """
    c = keypoints[:, list(joints)].mean(1)
    v = np.diff(c, axis=0)
    return float((v[:, 1] ** 2).mean() if vertical_only else (v ** 2).sum(-1).mean())


# --------------------------------------------------------------------------- agreement of two tracks
# Joint groups of the MA-52 layout for comparing two skeletons of one video (docs/pose-speed.md).
AGREEMENT_GROUPS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("body", tuple(range(26))), ("face", tuple(range(26, 32))), ("hands", tuple(range(32, 44))))
_NECK, _HIP_CENTRE, _HAND_ROOTS = 18, 19, (32, 38)


def joint_distances(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """(N, V) distance of each joint of ``other`` from ``reference`` (both (N, V, 2) pixels of
    the same frames, MA-52 layout), in torso lengths: the reference's median neck–hip-centre
    distance. NaN where either is missing."""
    if reference.shape != other.shape:
        raise ValueError(f"skeletons differ in shape: {reference.shape} and {other.shape}")
    torso = float(np.nanmedian(np.linalg.norm(reference[:, _NECK] - reference[:, _HIP_CENTRE], axis=-1)))
    return np.linalg.norm(other - reference, axis=-1) / torso


def missing_fraction(flags: np.ndarray) -> float:
    """Fraction of (frame, joint) entries flagged MISSING; ``flags`` (N, V) uint8."""
    from .keypoint_tables import MISSING

    return float(((flags & MISSING) != 0).mean())


def hand_model_fraction(flags: np.ndarray) -> float:
    """Fraction of (frame, hand) pairs whose hand root came from a hand model: neither
    estimated from the pose, filled over a gap nor missing; ``flags`` (N, 44) uint8."""
    from .keypoint_tables import ESTIMATED, FILLED, MISSING

    roots = flags[:, list(_HAND_ROOTS)]
    return float(((roots & (ESTIMATED | FILLED | MISSING)) == 0).mean())
