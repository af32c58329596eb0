"""Choose and follow the one subject of an interview video.

Interviews have one subject, but other people may walk through the frame, a single-person
estimator (MediaPipe) may jump to someone else for a while, and an edited interview cuts from
one camera to another, so the subject appears at another position and scale after each cut.
The policy:

1. **Track.** People are linked frame to frame by box overlap (IoU ≥ ``iou_threshold``, or
   centres closer than ``centre_threshold`` times the box diagonal), greedily, best match
   first; a track survives ``max_lost`` frames without a match. Given the shot cuts
   (:mod:`pose.shot_cuts`), a track is split at every cut: nothing is followed across one.
2. **Score.** Each track scores the sum over its frames of
   ``sqrt(box area / frame area) * centrality * mean joint score``, where centrality is 1 at
   the frame centre falling linearly to 0 at half the frame diagonal: large, central, long and
   well-detected tracks win.
3. **Choose and join.** The best track is the subject. Other tracks are joined to it, best
   first, when they do not overlap it in time and either their box at the join overlaps the
   subject's box next to the break (the subject was lost and found again) or they begin
   within ``cut_gap`` frames after a cut or end within ``cut_gap`` frames before one (the
   camera changed: the person alone after the cut continues the subject).
4. **Nobody else, ever.** With an estimator that reports everyone it sees (``multi_person``),
   a video in which no two people are ever in frame together has one subject: every track is
   it. A single-person estimator reports one person a frame whoever is there, so for it this
   rule says nothing and steps 1-3 decide.

Frames with no subject are left MISSING. What was decided goes into the skeleton file's
``meta["subject"]``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["POLICY", "SELECTION_VERSION", "SubjectConfig", "SubjectTracker", "box_iou", "frame_weight",
           "select_subject"]

SELECTION_VERSION = 2  # 2: tracks split at and joined across shot cuts (skeletons made before: redone)
POLICY = ("one subject: the track with the largest sum over its frames of sqrt(box area "
          "fraction) x centrality x mean joint score (largest, most central, continuous), "
          "tracks split at shot cuts, joined with tracks that resume it after a break or that "
          "begin just after / end just before a shot cut; every track when a multi-person "
          "estimator never saw two people at once; other people ignored")


@dataclass(frozen=True)
class SubjectConfig:
    iou_threshold: float = 0.3
    centre_threshold: float = 0.25
    max_lost: int = 15
    join_iou: float = 0.3
    cut_gap: int = 15  # frames between a cut and the start (end) of a track that continues the subject

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Track:
    id: int
    frames: list[int] = field(default_factory=list)
    dets: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    score: float = 0.0
    lost: int = 0


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (A, B) of ``x1, y1, x2, y2`` boxes (A, 4) and (B, 4)."""
    a = np.asarray(a, np.float64)[:, None]
    b = np.asarray(b, np.float64)[None]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[..., 2] - x[..., 0]).clip(0) * (x[..., 3] - x[..., 1]).clip(0)  # noqa: E731
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _centre_close(a: np.ndarray, b: np.ndarray, frac: float) -> np.ndarray:
    ca = (a[:, None, :2] + a[:, None, 2:]) / 2
    cb = (b[None, :, :2] + b[None, :, 2:]) / 2
    diag = np.hypot(a[:, None, 2] - a[:, None, 0], a[:, None, 3] - a[:, None, 1])
    return np.linalg.norm(ca - cb, axis=-1) < frac * np.maximum(diag, 1e-6)


def frame_weight(box: np.ndarray, mean_score: float, width: int, height: int) -> float:
    """A person's weight in one frame: sqrt(area fraction) * centrality * mean joint score."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(map(math.isfinite, (x1, y1, x2, y2))):
        return 0.0
    area = max(0.0, x2 - x1) * max(0.0, y2 - y1) / float(width * height)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    dist = math.hypot(cx - width / 2, cy - height / 2) / (0.5 * math.hypot(width, height))
    return math.sqrt(min(area, 1.0)) * max(0.0, 1.0 - dist) * max(0.0, float(mean_score))


class SubjectTracker:
    """Online association of per-frame people into tracks; :meth:`choose` picks the subject.

    Feed every frame in order with :meth:`update` (boxes (P, 4) and mean joint scores (P,));
    it returns the track id given to each person. Only boxes are kept (a few floats per
    person and frame), never images or keypoints.
    """

    def __init__(self, width: int, height: int, config: SubjectConfig | None = None, *,
                 multi_person: bool = False) -> None:
        self.width, self.height = int(width), int(height)
        self.config = config or SubjectConfig()
        self.multi_person = bool(multi_person)  # the estimator reports everyone it sees
        self.tracks: list[_Track] = []
        self._active: list[_Track] = []
        self.num_frames = 0
        self.max_people = 0
        self.frames_with_others = 0

    def update(self, frame: int, boxes: np.ndarray, mean_scores: np.ndarray) -> list[int]:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        n = len(boxes)
        self.num_frames = max(self.num_frames, frame + 1)
        self.max_people = max(self.max_people, n)
        self.frames_with_others += n > 1
        ids = [-1] * n
        valid = np.isfinite(boxes).all(1)
        if self._active and n:
            last = np.stack([t.boxes[-1] for t in self._active])
            iou = box_iou(last, np.where(valid[:, None], boxes, 0))
            close = _centre_close(last, np.where(valid[:, None], boxes, 0), self.config.centre_threshold)
            ok = ((iou >= self.config.iou_threshold) | close) & valid[None]
            order = np.dstack(np.unravel_index(np.argsort(-(iou + 0.01 * close), axis=None), iou.shape))[0]
            used_t, used_d = set(), set()
            for ti, di in order:
                if ok[ti, di] and ti not in used_t and di not in used_d:
                    used_t.add(ti)
                    used_d.add(di)
                    ids[di] = self._active[ti].id
        for t in self._active:
            t.lost += 1
        by_id = {t.id: t for t in self.tracks}
        for di in range(n):
            if not valid[di]:
                continue
            if ids[di] < 0:
                t = _Track(id=len(self.tracks))
                self.tracks.append(t)
                self._active.append(t)
                by_id[t.id] = t
                ids[di] = t.id
            t = by_id[ids[di]]
            t.frames.append(frame)
            t.dets.append(di)
            t.boxes.append(boxes[di])
            t.lost = 0
            t.weights.append(frame_weight(boxes[di], float(mean_scores[di]), self.width, self.height))
            t.score += t.weights[-1]
        self._active = [t for t in self._active if t.lost <= self.config.max_lost]
        return ids

    def choose(self, cuts: Sequence[int] | None = None) -> tuple[dict[int, int], dict[str, Any]]:
        """The subject: ``{frame: person index in that frame}`` and metadata for the file.

        ``cuts``: frames that start a new shot (:func:`pose.shot_cuts.detect_cuts`); tracks
        are split there and may continue the subject across them. None: no cuts known."""
        cut_list = sorted({int(c) for c in (cuts or ())})
        tracks = _split_at_cuts(self.tracks, cut_list)
        meta: dict[str, Any] = {"policy": POLICY, "config": self.config.to_dict(),
                                "num_tracks": len(tracks), "max_people_in_frame": self.max_people,
                                "frames_with_several_people": int(self.frames_with_others),
                                "multi_person_estimator": self.multi_person, "shot_cuts": len(cut_list)}
        if not tracks:
            meta.update(subject_tracks=[], frames_with_subject=0)
            return {}, meta
        ranked = sorted(tracks, key=lambda t: -t.score)
        if self.multi_person and self.max_people <= 1:
            chosen, rule, at_cuts = ranked, "every track: never two people in frame at once", []
        else:
            chosen, at_cuts = self._join(ranked, cut_list)
            rule = "best track, joined"
        pick = {f: d for t in chosen for f, d in zip(t.frames, t.dets)}
        chosen_ids = {t.id for t in chosen}
        meta.update(rule=rule, subject_tracks=[t.id for t in chosen],
                    subject_track_scores=[round(t.score, 4) for t in chosen],
                    joined_at_cuts=at_cuts,
                    best_other_track_score=round(max((t.score for t in ranked if t.id not in chosen_ids),
                                                     default=0.0), 4),
                    frames_with_subject=len(pick))
        return pick, meta

    def _join(self, ranked: list[_Track], cuts: list[int]) -> tuple[list[_Track], list[int]]:
        """The best track and, best first, the tracks that continue it (see the module doc);
        also the ids of those joined because of a cut."""
        chosen = [ranked[0]]
        taken = set(ranked[0].frames)
        at_cuts: list[int] = []
        for t in ranked[1:]:
            if taken.intersection(t.frames):
                continue
            if self._resumes(t, chosen):
                chosen.append(t)
            elif _beside_cut(t, cuts, self.config.cut_gap):
                chosen.append(t)
                at_cuts.append(t.id)
            else:
                continue
            taken.update(t.frames)
        return chosen, at_cuts

    def _resumes(self, t: _Track, chosen: list[_Track]) -> bool:
        """``t`` overlaps the subject's box next to each break between them (lost and found)."""
        # the subject's box nearest in time before/after this track
        before = [(f, b) for c in chosen for f, b in zip(c.frames, c.boxes) if f < t.frames[0]]
        after = [(f, b) for c in chosen for f, b in zip(c.frames, c.boxes) if f > t.frames[-1]]
        links = []
        if before:
            links.append((max(before, key=lambda x: x[0])[1], t.boxes[0]))
        if after:
            links.append((min(after, key=lambda x: x[0])[1], t.boxes[-1]))
        return bool(links) and all(box_iou(a[None], b[None])[0, 0] >= self.config.join_iou for a, b in links)


def _beside_cut(t: _Track, cuts: Sequence[int], gap: int) -> bool:
    """``t`` begins at most ``gap`` frames after a cut, or ends at most ``gap`` frames before one."""
    first, end = t.frames[0], t.frames[-1] + 1
    return any(c <= first <= c + gap or c - gap <= end <= c for c in cuts)


def _split_at_cuts(tracks: Sequence[_Track], cuts: Sequence[int]) -> list[_Track]:
    """``tracks`` with each one cut into pieces at the shot cuts (frames that start a shot);
    the first piece keeps the track's id, the others get new ids after all the tracks'."""
    if not cuts:
        return list(tracks)
    out: list[_Track] = []
    next_id = len(tracks)
    for t in tracks:
        shot = np.searchsorted(np.asarray(cuts), np.asarray(t.frames), side="right")
        starts = [0] + [i for i in range(1, len(shot)) if shot[i] != shot[i - 1]] + [len(shot)]
        for k, (a, b) in enumerate(zip(starts[:-1], starts[1:])):
            tid = t.id if k == 0 else next_id
            next_id += k > 0
            out.append(_Track(id=tid, frames=t.frames[a:b], dets=t.dets[a:b], boxes=t.boxes[a:b],
                              weights=t.weights[a:b], score=float(sum(t.weights[a:b]))))
    return out


def select_subject(boxes: Sequence[np.ndarray], mean_scores: Sequence[np.ndarray], width: int,
                   height: int, config: SubjectConfig | None = None, *, cuts: Sequence[int] | None = None,
                   multi_person: bool = False) -> tuple[dict[int, int], dict[str, Any]]:
    """Run :class:`SubjectTracker` over per-frame boxes (P_t, 4) and mean scores (P_t,);
    ``cuts``: frames that start a shot; ``multi_person``: the estimator reports everyone."""
    tracker = SubjectTracker(width, height, config, multi_person=multi_person)
    for i, (b, s) in enumerate(zip(boxes, mean_scores)):
        tracker.update(i, b, s)
    return tracker.choose(cuts)
