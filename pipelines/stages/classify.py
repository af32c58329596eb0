"""Stage 4, classify: the windows where the subject is present through MMN.

Engines type the model against :class:`Classifier` (what :class:`mmn.inference.Recognizer`
offers). What the outputs say about the model is a :class:`ModelInfo`; what comes out for one
video is a :class:`WindowScores` (the class probabilities and the one modulation map drawn
as heat), small enough to travel between processes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from core.layouts import SkeletonLayout
from core.taxonomy import Taxonomy
from pipelines.stages.windowing import Window

if TYPE_CHECKING:
    from mmn.checkpoint import CheckpointMeta
    from mmn.inference import Prediction

__all__ = ["MIN_PRESENT_FRACTION", "Classifier", "ModelInfo", "WindowScores", "classify_windows", "fill_for_model",
           "model_clips", "scores_of", "usable_windows"]

MIN_PRESENT_FRACTION = 0.5  # a window needs the subject in at least half of its frames


class CheckpointStream(Protocol):
    """One loaded model stream: its checkpoint's description."""

    @property
    def meta(self) -> CheckpointMeta: ...


class Classifier(Protocol):
    """What the stages need of a skeleton-clip classifier (:class:`mmn.inference.Recognizer`)."""

    @property
    def taxonomy(self) -> Taxonomy: ...

    @property
    def layout(self) -> SkeletonLayout: ...

    @property
    def clip_len(self) -> int: ...

    @property
    def streams(self) -> Sequence[CheckpointStream]: ...

    @property
    def device(self) -> object: ...

    def predict(self, clips: Sequence[np.ndarray], return_maps: bool = False, batch_size: int = 64,
                clip_len: int | None = None) -> Prediction: ...


@dataclass(frozen=True)
class ModelInfo:
    """What the outputs record of the model: its checkpoints (file, sha256, modality), taxonomy,
    layout, clip length and the device it ran on."""

    metas: tuple[CheckpointMeta, ...]
    taxonomy: Taxonomy
    layout: SkeletonLayout
    clip_len: int
    device: str

    @classmethod
    def of(cls, classifier: Classifier, device: str | None = None) -> ModelInfo:
        """``classifier``'s description (``device``: where it ran, when not on ``classifier``'s)."""
        return cls(tuple(s.meta for s in classifier.streams), classifier.taxonomy, classifier.layout,
                   classifier.clip_len, str(classifier.device) if device is None else device)

    @property
    def checkpoints_sha256(self) -> list[str | None]:
        return [m.sha256 for m in self.metas]


@dataclass(frozen=True)
class WindowScores:
    """The classifier's output for one video's usable windows (W of them, in order).

    ``probs``: (W, K) float32 class probabilities; ``frame_inds``: (W, clip_len) the frame of
    the window each sampled clip frame came from; ``heat``: (W, clip_len, V) the modulation
    map named ``heat_name``, or None when the classifier gave no such map."""

    probs: np.ndarray
    frame_inds: np.ndarray
    heat: np.ndarray | None
    heat_name: str


def fill_for_model(clip: np.ndarray) -> np.ndarray:
    """Make a window's (L, V, 2) track finite for MMN without inventing motion: each joint's
    missing frames are interpolated linearly in time (held at the edges); a joint missing in
    the whole window sits on the mean of the frame's present joints (it then does not move)."""
    out = np.array(clip, np.float32, copy=True)
    t = np.arange(out.shape[0])
    for j in range(out.shape[1]):
        ok = np.isfinite(out[:, j]).all(axis=1)
        if ok.all() or not ok.any():
            continue
        for c in range(2):
            out[~ok, j, c] = np.interp(t[~ok], t[ok], out[ok, j, c])
    still_missing = ~np.isfinite(out).all(axis=2)
    if still_missing.any():
        frame_mean = np.nanmean(np.where(still_missing[..., None], np.nan, out), axis=1)  # (L, 2)
        frame_mean = np.where(np.isfinite(frame_mean), frame_mean, np.nanmean(frame_mean, axis=0))
        out[still_missing] = np.broadcast_to(frame_mean[:, None], out.shape)[still_missing]
    return out


def _present(clip: np.ndarray) -> np.ndarray:
    """(L,) bool: frames where the subject was found (any joint finite)."""
    return np.isfinite(clip).all(axis=2).any(axis=1)


def usable_windows(keypoints: np.ndarray, windows: Sequence[Window]) -> list[Window]:
    """The windows with the subject in at least :data:`MIN_PRESENT_FRACTION` of their frames."""
    return [w for w in windows if _present(keypoints[w.start:w.end]).mean() >= MIN_PRESENT_FRACTION]


def model_clips(keypoints: np.ndarray, windows: Sequence[Window]) -> list[np.ndarray]:
    """Each window's (L, V, 2) track, filled for the model (:func:`fill_for_model`)."""
    return [fill_for_model(keypoints[w.start:w.end]) for w in windows]


def scores_of(prediction: Prediction, heatmap: str, rows: slice = slice(None)) -> WindowScores:
    """The :class:`WindowScores` of ``rows`` of a prediction (only the map ``heatmap`` kept)."""
    heat = prediction.maps[heatmap][rows] if heatmap in prediction.maps else None
    return WindowScores(prediction.probs[rows], prediction.frame_inds[rows], heat, heatmap)


def classify_windows(keypoints: np.ndarray, windows: Sequence[Window], classifier: Classifier, *,
                     heatmap: str, batch_size: int) -> WindowScores | None:
    """Classify ``windows`` (the usable ones, :func:`usable_windows`) of a (N, V, 2) track in
    chunks of ``batch_size``; None when there is no window."""
    clips = model_clips(keypoints, windows)
    if not clips:
        return None
    return scores_of(classifier.predict(clips, return_maps=True, batch_size=batch_size), heatmap)
