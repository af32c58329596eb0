"""How each estimator's native keypoints become the 44 MA-52 joints, written as data.

In the manner of mmpose's ``KeypointConverter``, a table lists for every target joint where it
comes from. A target joint has one or more *sources*, tried in order; a source is a weighted
(affine) combination of native points:

- a native point that is the joint: ``((i, 1.0),)`` (the ``(target, source index)`` pairs);
- an estimate: several points with weights summing to 1, e.g. the neck as the midpoint of the
  shoulders ``((5, 0.5), (6, 0.5))``, marked ``estimated`` and with a ``score_factor`` that
  lowers its confidence.

The first source whose points are all present (finite, score > 0) wins. Its score is
``score_factor * min(score of its points)``; the joint is flagged ESTIMATED when that source is
an estimate. Native formats and their point numbering:

- ``halpe_136``: AlphaPose Halpe-136 (26 body/feet, 68 face from 26, 21 left hand from 94,
  21 right hand from 115). MA-52 is its cut-down: every joint is native.
- ``coco_wholebody_133``: COCO-WholeBody (17 body, 6 feet from 17, 68 face from 23, left hand
  from 91, right hand from 112). Lacks head top, neck and hip centre.
- ``mediapipe_holistic_543``: MediaPipe Holistic concatenated as pose 0–32, face mesh 33–500
  (mesh point m at 33+m), left hand 501–521, right hand 522–542 (the subject's own sides).
  The face joints come from the mesh, else from the pose landmarks; the hand joints from the
  hand model, else from the pose hand landmarks 15–22 (lowered scores).
- ``ma52_44``: already the 44 joints (identity).

The estimates, and why (image coordinates; "mid(a, b)" is the midpoint):

- head top: above the eyes along the mouth→eyes direction, 1.6 times the eye–mouth distance:
  ``mid(eyes) + 1.6 * (mid(eyes) - mid(mouth corners))`` (an adult's crown is about 11–12 cm
  above the eye line and the mouth about 7 cm below it; it follows head tilt and nods). When
  the mouth is missing (COCO-WholeBody): ``mid(eyes) + 3 * (mid(eyes) - nose)``.
- neck: ``mid(shoulders)``; hip centre: ``mid(hips)`` (as AlphaPose's Halpe annotations place
  them).
- small toe (MediaPipe has only the foot index ≈ big toe): ``0.85 * foot index + 0.15 * heel``,
  a point just behind the big toe on the foot axis; crude, so its score is lowered.
- face, from MediaPipe pose landmarks when the mesh is missing (MA-52 faces are pixelated):
  nose bridge (68-point 28) = mean of the eye inner corners and the nose tip; nose base
  (33) = 2/3 nose tip + 1/3 mouth centre; eye outer corners (36, 45) = pose 6 / 3; upper lip
  top (51) = mouth centre moved 0.25 of the way to the nose tip; lower lip bottom (57) =
  mouth centre moved 0.3 of the nose–mouth distance away from the nose.
- hands, from MediaPipe pose landmarks when the hand model misses: root = wrist, thumb tip =
  thumb (21/22), index tip = index (19/20), little tip = pinky (17/18), middle and ring tips
  interpolated 1/3 and 2/3 of the way from index to pinky.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from core.layouts import MA52_44, SkeletonLayout

# Bit flags per joint and frame (stored in the skeleton file's ``flags``).
ESTIMATED = 1  # derived from other points (an estimate), not seen by the estimator directly
FILLED = 2     # interpolated over a short gap by post-processing
MISSING = 4    # no value: keypoint is NaN and score 0
FLAG_NAMES = {ESTIMATED: "ESTIMATED", FILLED: "FILLED", MISSING: "MISSING"}


@dataclass(frozen=True)
class JointSource:
    """A weighted combination of native points that stands for one target joint."""

    points: tuple[tuple[int, float], ...]
    estimated: bool = False
    score_factor: float = 1.0
    note: str = ""

    def __post_init__(self) -> None:
        total = sum(w for _, w in self.points)
        if not self.points or abs(total - 1.0) > 1e-6:
            raise ValueError(f"source weights must sum to 1 (affine combination), got {self.points}")


@dataclass(frozen=True)
class KeypointTable:
    """Sources, in preference order, for every joint of ``layout`` from a native format."""

    name: str
    num_keypoints: int
    layout: SkeletonLayout
    sources: tuple[tuple[JointSource, ...], ...]

    def __post_init__(self) -> None:
        if len(self.sources) != self.layout.num_joints:
            raise ValueError(f"table {self.name}: {len(self.sources)} entries for "
                             f"{self.layout.num_joints} joints")
        for j, alts in enumerate(self.sources):
            if not alts:
                raise ValueError(f"table {self.name}: joint {j} has no source")
            for s in alts:
                for i, _ in s.points:
                    if not 0 <= i < self.num_keypoints:
                        raise ValueError(f"table {self.name}: joint {j} reads point {i} "
                                         f"outside 0..{self.num_keypoints - 1}")

    def pairs(self) -> list[tuple[int, int]]:
        """``(target joint, native index)`` for the joints whose first source is one native point."""
        return [(j, alts[0].points[0][0]) for j, alts in enumerate(self.sources)
                if len(alts[0].points) == 1 and not alts[0].estimated]

    def map(self, keypoints: np.ndarray, scores: np.ndarray,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Map native points to the layout.

        Args:
            keypoints: (..., K, 2) native points in pixels, NaN where absent.
            scores: (..., K) confidences in [0, 1], 0 where absent.
        Returns:
            keypoints (..., V, 2) float32 (NaN where no source is available), scores (..., V)
            float32 and flags (..., V) uint8 (ESTIMATED / MISSING bits).
        """
        keypoints = np.asarray(keypoints, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
        if keypoints.shape[-2:] != (self.num_keypoints, 2) or scores.shape != keypoints.shape[:-1]:
            raise ValueError(f"table {self.name}: expected keypoints (..., {self.num_keypoints}, 2) "
                             f"and scores (..., {self.num_keypoints}), got {keypoints.shape} and "
                             f"{scores.shape}")
        lead = keypoints.shape[:-2]
        v = self.layout.num_joints
        present = np.isfinite(keypoints).all(-1) & (scores > 0)
        clean = np.where(present[..., None], keypoints, 0.0)
        out_kp = np.full(lead + (v, 2), np.nan)
        out_sc = np.zeros(lead + (v,))
        out_fl = np.full(lead + (v,), MISSING, dtype=np.uint8)
        done = np.zeros(lead + (v,), dtype=bool)
        for level, (idx, w, factor, est) in enumerate(self._compiled):
            # idx, w: (V, S) padded with weight 0; factor, est: (V,); a joint without a source at
            # this level has all weights 0 and is skipped.
            has = (w != 0).any(-1)
            ok = np.where(w != 0, present[..., idx], True).all(-1) & has & ~done
            if not ok.any():
                continue
            val = (clean[..., idx, :] * w[..., None]).sum(-2)
            sc = np.where(w != 0, scores[..., idx], np.inf).min(-1) * factor
            out_kp = np.where(ok[..., None], val, out_kp)
            out_sc = np.where(ok, sc, out_sc)
            out_fl = np.where(ok, np.where(est, ESTIMATED, 0), out_fl).astype(np.uint8)
            done |= ok
        return out_kp.astype(np.float32), np.clip(out_sc, 0, 1).astype(np.float32), out_fl

    @property
    def _compiled(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        cached = self.__dict__.get("_compiled_cache")
        if cached is None:
            levels = max(len(a) for a in self.sources)
            width = max(len(s.points) for a in self.sources for s in a)
            v = len(self.sources)
            cached = []
            for level in range(levels):
                idx = np.zeros((v, width), dtype=np.int64)
                w = np.zeros((v, width))
                factor = np.ones(v)
                est = np.zeros(v, dtype=bool)
                for j, alts in enumerate(self.sources):
                    if level < len(alts):
                        s = alts[level]
                        for k, (i, wt) in enumerate(s.points):
                            idx[j, k], w[j, k] = i, wt
                        factor[j], est[j] = s.score_factor, s.estimated
                cached.append((idx, w, factor, est))
            object.__setattr__(self, "_compiled_cache", cached)
        return cached

    def describe(self) -> str:
        """One line per target joint: name ← sources (for documentation and debugging)."""
        lines = []
        for name, alts in zip(self.layout.joint_names, self.sources):
            parts = []
            for s in alts:
                combo = " + ".join(f"{w:g}*[{i}]" if w != 1 else f"[{i}]" for i, w in s.points)
                tag = f" (estimate x{s.score_factor:g})" if s.estimated else ""
                parts.append(combo + tag)
            lines.append(f"{name}: " + " | else ".join(parts))
        return "\n".join(lines)


def _direct(i: int) -> JointSource:
    return JointSource(((i, 1.0),))


def _est(points: Iterable[tuple[int, float]], factor: float, note: str = "") -> JointSource:
    return JointSource(tuple(points), estimated=True, score_factor=factor, note=note)


def _mid(a: int, b: int, factor: float = 1.0, note: str = "") -> JointSource:
    return _est(((a, 0.5), (b, 0.5)), factor, note)


# Score factors of the estimates (how much an estimate is trusted relative to its inputs).
MIDPOINT_FACTOR = 1.0     # neck, hip centre: midpoints of two well-detected joints
HEAD_TOP_FACTOR = 0.8
SMALL_TOE_FACTOR = 0.6
FACE_FALLBACK_FACTOR = 0.5
HAND_ROOT_FALLBACK_FACTOR = 0.9  # the pose wrist is the hand root
FINGERTIP_FALLBACK_FACTOR = 0.5
FINGER_INTERP_FACTOR = 0.4
HEAD_TOP_K = 1.6          # head top = mid(eyes) + K * (mid(eyes) - mid(mouth))


def _head_top(eye_l: int, eye_r: int, mouth_l: int, mouth_r: int) -> JointSource:
    a = (1 + HEAD_TOP_K) / 2
    b = -HEAD_TOP_K / 2
    return _est(((eye_l, a), (eye_r, a), (mouth_l, b), (mouth_r, b)), HEAD_TOP_FACTOR,
                "mid(eyes) + 1.6 * (mid(eyes) - mid(mouth corners))")


def _table(name: str, k: int, entries: Sequence[Sequence[JointSource]],
           layout: SkeletonLayout = MA52_44) -> KeypointTable:
    return KeypointTable(name, k, layout, tuple(tuple(e) for e in entries))


# ---------------------------------------------------------------------------------------------
# Halpe-136 (AlphaPose): the MA-52 joints are a subset.
HALPE136_INDICES: tuple[int, ...] = (
    *range(26), 54, 59, 62, 71, 77, 83, 94, 98, 102, 106, 110, 114, 115, 119, 123, 127, 131, 135)
HALPE136 = _table("halpe_136", 136, [[_direct(i)] for i in HALPE136_INDICES])

# ---------------------------------------------------------------------------------------------
# COCO-WholeBody-133 (mmpose RTMW / DWPose / RTMPose-wholebody).
_CW_FACE = 23   # face point k (0-based 68-point numbering) is 23 + k
_CW_LHAND, _CW_RHAND = 91, 112
COCO_WB133_PAIRS: tuple[tuple[int, int], ...] = (
    *((i, i) for i in range(17)),
    (20, 17), (21, 20), (22, 18), (23, 21), (24, 19), (25, 22),
    (26, _CW_FACE + 28), (27, _CW_FACE + 33), (28, _CW_FACE + 36), (29, _CW_FACE + 45),
    (30, _CW_FACE + 51), (31, _CW_FACE + 57),
    *((32 + n, _CW_LHAND + k) for n, k in enumerate((0, 4, 8, 12, 16, 20))),
    *((38 + n, _CW_RHAND + k) for n, k in enumerate((0, 4, 8, 12, 16, 20))),
)


def _from_pairs(pairs: Sequence[tuple[int, int]], estimates: dict[int, Sequence[JointSource]],
                v: int = 44) -> list[list[JointSource]]:
    entries: list[list[JointSource]] = [[] for _ in range(v)]
    for j, i in pairs:
        entries[j].append(_direct(i))
    for j, alts in estimates.items():
        entries[j].extend(alts)
    return entries


COCO_WB133 = _table("coco_wholebody_133", 133, _from_pairs(COCO_WB133_PAIRS, {
    17: [_head_top(1, 2, _CW_FACE + 48, _CW_FACE + 54),
         # mouth corners missing: above the eyes by three eye–nose distances
         _est(((1, 2.0), (2, 2.0), (0, -3.0)), HEAD_TOP_FACTOR * 0.75,
              "mid(eyes) + 3 * (mid(eyes) - nose)")],
    18: [_mid(5, 6, MIDPOINT_FACTOR, "mid(shoulders)")],
    19: [_mid(11, 12, MIDPOINT_FACTOR, "mid(hips)")],
}))

# ---------------------------------------------------------------------------------------------
# MediaPipe Holistic, concatenated: pose 0..32, face mesh 33..500, left hand 501.., right 522..
MP_POSE, MP_FACE, MP_LHAND, MP_RHAND = 0, 33, 501, 522
MP_NUM = 543
# Face-mesh points for the six face joints (68-point 28, 33, 36, 45, 51, 57).
MP_MESH_FACE = {26: 197, 27: 2, 28: 33, 29: 263, 30: 0, 31: 17}
# Pose landmarks: 0 nose, 1/4 left/right eye inner, 2/5 eyes, 3/6 eye outer, 7/8 ears,
# 9/10 mouth left/right, 11.. shoulders, elbows, wrists, 17/18 pinky, 19/20 index, 21/22 thumb,
# 23/24 hips, 25/26 knees, 27/28 ankles, 29/30 heels, 31/32 foot index.
MEDIAPIPE_POSE_PAIRS: tuple[tuple[int, int], ...] = (
    (0, 0), (1, 2), (2, 5), (3, 7), (4, 8), (5, 11), (6, 12), (7, 13), (8, 14), (9, 15), (10, 16),
    (11, 23), (12, 24), (13, 25), (14, 26), (15, 27), (16, 28), (20, 31), (21, 32), (24, 29),
    (25, 30),
)


def _mp_hand(root: int, wrist: int, pinky: int, index: int, thumb: int, hand0: int
             ) -> dict[int, list[JointSource]]:
    """Hand joints root..little tip: hand model point, else pose landmarks (lowered scores)."""
    hand_pts = (0, 4, 8, 12, 16, 20)
    fallback = [
        _est(((wrist, 1.0),), HAND_ROOT_FALLBACK_FACTOR, "pose wrist"),
        _est(((thumb, 1.0),), FINGERTIP_FALLBACK_FACTOR, "pose thumb"),
        _est(((index, 1.0),), FINGERTIP_FALLBACK_FACTOR, "pose index"),
        _est(((index, 2 / 3), (pinky, 1 / 3)), FINGER_INTERP_FACTOR, "index→pinky 1/3"),
        _est(((index, 1 / 3), (pinky, 2 / 3)), FINGER_INTERP_FACTOR, "index→pinky 2/3"),
        _est(((pinky, 1.0),), FINGERTIP_FALLBACK_FACTOR, "pose pinky"),
    ]
    return {root + n: [_direct(hand0 + k), fallback[n]] for n, k in enumerate(hand_pts)}


_F = FACE_FALLBACK_FACTOR
MEDIAPIPE_HOLISTIC = _table("mediapipe_holistic_543", MP_NUM, _from_pairs(MEDIAPIPE_POSE_PAIRS, {
    17: [_head_top(2, 5, 9, 10)],
    18: [_mid(11, 12, MIDPOINT_FACTOR, "mid(shoulders)")],
    19: [_mid(23, 24, MIDPOINT_FACTOR, "mid(hips)")],
    22: [_est(((31, 0.85), (29, 0.15)), SMALL_TOE_FACTOR, "0.85 foot index + 0.15 heel")],
    23: [_est(((32, 0.85), (30, 0.15)), SMALL_TOE_FACTOR, "0.85 foot index + 0.15 heel")],
    26: [_direct(MP_FACE + MP_MESH_FACE[26]),
         _est(((1, 1 / 3), (4, 1 / 3), (0, 1 / 3)), _F, "mean(eye inner corners, nose)")],
    27: [_direct(MP_FACE + MP_MESH_FACE[27]),
         _est(((0, 2 / 3), (9, 1 / 6), (10, 1 / 6)), _F, "2/3 nose + 1/3 mouth centre")],
    28: [_direct(MP_FACE + MP_MESH_FACE[28]), _est(((6, 1.0),), _F, "pose right eye outer")],
    29: [_direct(MP_FACE + MP_MESH_FACE[29]), _est(((3, 1.0),), _F, "pose left eye outer")],
    30: [_direct(MP_FACE + MP_MESH_FACE[30]),
         _est(((0, 0.25), (9, 0.375), (10, 0.375)), _F, "mouth centre + 0.25 (nose - mouth)")],
    31: [_direct(MP_FACE + MP_MESH_FACE[31]),
         _est(((0, -0.3), (9, 0.65), (10, 0.65)), _F, "mouth centre - 0.3 (nose - mouth)")],
    **_mp_hand(32, wrist=15, pinky=17, index=19, thumb=21, hand0=MP_LHAND),
    **_mp_hand(38, wrist=16, pinky=18, index=20, thumb=22, hand0=MP_RHAND),
}))

# ---------------------------------------------------------------------------------------------
MA52_IDENTITY = _table("ma52_44", 44, [[_direct(i)] for i in range(44)])

TABLES: dict[str, KeypointTable] = {t.name: t for t in (HALPE136, COCO_WB133, MEDIAPIPE_HOLISTIC,
                                                          MA52_IDENTITY)}


def table_for(format_name: str) -> KeypointTable:
    """The table that maps ``format_name`` (e.g. ``"coco_wholebody_133"``) to the 44 joints."""
    try:
        return TABLES[format_name]
    except KeyError:
        raise ValueError(f"unknown keypoint format {format_name!r} (known: {', '.join(TABLES)})"
                         ) from None


def table_for_count(num_keypoints: int) -> KeypointTable:
    """The table for a native format with ``num_keypoints`` points (136, 133, 543 or 44)."""
    for t in TABLES.values():
        if t.num_keypoints == num_keypoints:
            return t
    raise ValueError(f"no keypoint table for {num_keypoints} points per person (supported: "
                     + ", ".join(f"{t.name}={t.num_keypoints}" for t in TABLES.values()) + ")")
