"""MMN's clip preprocessing as small composable steps (docs/mmn-computation.md §1).

Each step is a callable on a ``results`` dict, in the manner of mmaction2's pipelines, and says
which keys it reads and writes. The keys:

- ``keypoint``: (L, V, 2) float32 coordinates of one person. Raw clips are in pixels; after
  :class:`MinMaxScale` they lie in [-1, 1]. Sampling makes L = ``clip_len``.
- ``total_frames``: L of the raw clip (int).
- ``frame_inds``: (clip_len,) int64 indices of the sampled raw frames.
- ``index_t``: (clip_len,) float32 time codes ``2 · frame_inds / total_frames − 1``.
- ``inputs``: (2, clip_len, V, 1) float32, the model input in body-part joint order.

:func:`eval_pipeline` (test-time) and :func:`preprocess_clip` give the authors' test-time preprocessing;
:class:`RandomSampleFrames` is the training-time sampler.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from core.layouts import SkeletonLayout

Results = dict[str, Any]
CLIP_LEN = 64
MODALITIES = ("joint", "bone")


class Compose:
    """Apply steps in order: ``Compose([a, b])(results) == b(a(results))``."""

    def __init__(self, steps: Sequence[Callable[[Results], Results]]) -> None:
        self.steps = list(steps)

    def __call__(self, results: Results) -> Results:
        for step in self.steps:
            results = step(results)
        return results

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(s) for s in self.steps) + ")"


class CentreOnJoint:
    """Subtract joint ``centre`` of frame 0 from every point. Reads/writes ``keypoint``."""

    def __init__(self, centre: int) -> None:
        self.centre = centre

    def __call__(self, results: Results) -> Results:
        kp = results["keypoint"]
        results["keypoint"] = kp - kp[0, self.centre]
        return results

    def __repr__(self) -> str:
        return f"CentreOnJoint(centre={self.centre})"


class MinMaxScale:
    """Scale each coordinate axis to [-1, 1] over all frames and joints at once:
    ``(v − min) / (max − min + 1e-6) · 2 − 1``. Reads/writes ``keypoint``."""

    def __call__(self, results: Results) -> Results:
        kp = results["keypoint"]
        lo = kp.min(axis=(0, 1), keepdims=True)
        hi = kp.max(axis=(0, 1), keepdims=True)
        results["keypoint"] = ((kp - lo) / (hi - lo + np.float32(1e-6)) * 2 - 1).astype(np.float32)
        return results

    def __repr__(self) -> str:
        return "MinMaxScale()"


def _take_frames(results: Results, inds: np.ndarray) -> Results:
    total = results["keypoint"].shape[0]
    results["total_frames"] = total
    results["frame_inds"] = inds.astype(np.int64)
    results["keypoint"] = results["keypoint"][inds]
    # Divided by L, not L − 1, and in float32, as in the released code.
    results["index_t"] = 2 * inds.astype(np.float32) / np.float32(total) - 1
    return results


class UniformSampleFrames:
    """Test-time sampling: ``floor(linspace(0, L − 1, clip_len))``.
    Reads ``keypoint``; writes ``keypoint``, ``total_frames``, ``frame_inds``, ``index_t``."""

    def __init__(self, clip_len: int = CLIP_LEN) -> None:
        self.clip_len = clip_len

    def __call__(self, results: Results) -> Results:
        total = results["keypoint"].shape[0]
        if total < 1:
            raise ValueError("cannot sample frames from an empty clip")
        inds = np.linspace(0, total - 1, self.clip_len).astype(int)
        return _take_frames(results, inds)

    def __repr__(self) -> str:
        return f"UniformSampleFrames(clip_len={self.clip_len})"


class RandomSampleFrames:
    """Training-time sampling of the released code: ``clip_len`` indices drawn without
    replacement from ``range(L)`` repeated ``clip_len`` times, then sorted (short clips repeat
    frames, long clips keep a random ordered subset).
    Reads ``keypoint``; writes ``keypoint``, ``total_frames``, ``frame_inds``, ``index_t``."""

    def __init__(self, clip_len: int = CLIP_LEN, seed: int | None = None) -> None:
        self.clip_len = clip_len
        self.rng = np.random.default_rng(seed)

    def __call__(self, results: Results) -> Results:
        total = results["keypoint"].shape[0]
        if total < 1:
            raise ValueError("cannot sample frames from an empty clip")
        pool = np.tile(np.arange(total), self.clip_len)
        inds = np.sort(self.rng.choice(pool, self.clip_len, replace=False))
        return _take_frames(results, inds)

    def __repr__(self) -> str:
        return f"RandomSampleFrames(clip_len={self.clip_len})"


class BoneModality:
    """Joints to bones: start from zeros and, for each ``(a, b)`` in list order, set
    ``bone[:, a] = joint[:, a] − joint[:, b]``. Reads/writes ``keypoint``."""

    def __init__(self, bones: Sequence[tuple[int, int]]) -> None:
        self.bones = [tuple(b) for b in bones]

    def __call__(self, results: Results) -> Results:
        kp = results["keypoint"]
        bone = np.zeros_like(kp)
        for a, b in self.bones:
            bone[:, a] = kp[:, a] - kp[:, b]
        results["keypoint"] = bone
        return results

    def __repr__(self) -> str:
        return f"BoneModality({len(self.bones)} bones)"


class ReorderJoints:
    """Put joints into MMN's body-part order ``order`` (model joint i = storage joint
    ``order[i]``). Reads/writes ``keypoint``."""

    def __init__(self, order: Sequence[int]) -> None:
        self.order = np.asarray(order, dtype=np.int64)

    def __call__(self, results: Results) -> Results:
        results["keypoint"] = results["keypoint"][:, self.order]
        return results

    def __repr__(self) -> str:
        return f"ReorderJoints({len(self.order)} joints)"


class FormatInputs:
    """Pack (T, V, C) ``keypoint`` into the model's (C, T, V, 1) float32 ``inputs``."""

    def __call__(self, results: Results) -> Results:
        kp = results["keypoint"]
        results["inputs"] = np.ascontiguousarray(kp.transpose(2, 0, 1)[..., None], dtype=np.float32)
        return results

    def __repr__(self) -> str:
        return "FormatInputs()"


def check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    return modality


def normalise_steps(layout: SkeletonLayout) -> list[Callable[[Results], Results]]:
    """Centre on the layout's centre joint of frame 0, then min–max scale to [-1, 1]."""
    return [CentreOnJoint(layout.centre_joint), MinMaxScale()]


def modality_steps(layout: SkeletonLayout, modality: str) -> list[Callable[[Results], Results]]:
    """Bone conversion (bone modality only), body-part reorder and packing."""
    steps: list[Callable[[Results], Results]] = []
    if check_modality(modality) == "bone":
        steps.append(BoneModality(layout.bones))
    return steps + [ReorderJoints(layout.partition), FormatInputs()]


def eval_pipeline(layout: SkeletonLayout, modality: str = "joint", clip_len: int = CLIP_LEN) -> Compose:
    """The authors' test-time preprocessing for ``layout`` and ``modality``."""
    return Compose(normalise_steps(layout) + [UniformSampleFrames(clip_len)]
                   + modality_steps(layout, modality))


def preprocess_clip(keypoints: np.ndarray, layout: SkeletonLayout, modality: str = "joint",
                    clip_len: int = CLIP_LEN) -> tuple[np.ndarray, np.ndarray]:
    """Raw (L, V, 2) pixel keypoints of one person → ``(inputs (2, clip_len, V, 1),
    index_t (clip_len,))``, both float32, exactly as the authors' test-time code makes them."""
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.ndim != 3 or kp.shape[1] != layout.num_joints or kp.shape[2] != 2 or kp.shape[0] < 1:
        raise ValueError(f"expected keypoints of shape (L ≥ 1, {layout.num_joints}, 2) for layout "
                         f"{layout.name}, got {kp.shape}")
    if not np.isfinite(kp).all():
        raise ValueError("keypoints contain NaN or infinite values; fill gaps before classifying")
    out = eval_pipeline(layout, modality, clip_len)({"keypoint": kp})
    return out["inputs"], out["index_t"]
