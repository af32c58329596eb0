"""Training-time augmentation: the paper's STCA and the released code's masking, as pipeline steps.

Each step is a callable on the ``results`` dict of :mod:`mmn.preprocess` (keys documented
there) and says which keys it reads and writes. Random steps own a ``numpy`` Generator
``self.rng`` seeded by ``seed``; :func:`reseed` gives every random step of a pipeline a fresh,
independent stream (the dataset calls it once per worker / rank).

STCA (docs/mmn-computation.md §1), each part applied with probability ``p`` on its own:

- :class:`TemporalJitter`: moves every sampled frame index by an integer in ±3, clamped to
  [0, L − 1], re-reads those raw frames and recomputes ``index_t`` from the indices actually
  used, so the time code stays true to the frames the model sees.
- :class:`RandomRotation` (±15°), :class:`RandomScaling` ([0.9, 1.1]),
  :class:`RandomTranslation` (±0.1 per axis): one affine map for the whole clip, about the
  origin of the centred, min–max scaled coordinates (so ±0.1 is in normalised units).

The authors' released 2D trainer computed all of these on an array it then discarded (the
model saw none of them); here they change ``keypoint`` itself, and the tests check that the
model input changes. Their masking augmentations, which did reach the model, are options:
:class:`AxisMask` and :class:`TemporalBlockDropout`. Time reversal (also dead code there, and
not part of the paper's STCA) is not offered.

:func:`train_pipeline` assembles the training chain: centre → min–max scale → random
sampling with jitter → rotation → scaling → translation → [axis mask] → [block dropout] →
[bone] → body-part reorder → format.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from core.layouts import SkeletonLayout
from mmn.preprocess import CLIP_LEN, Compose, RandomSampleFrames, Results, _take_frames, modality_steps, normalise_steps


class RandomStep:
    """Base of the random steps: probability ``p`` and a seeded Generator ``rng``."""

    def __init__(self, p: float, seed: int | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability must lie in [0, 1], got {p}")
        self.p = float(p)
        self.rng = np.random.default_rng(seed)

    def fires(self) -> bool:
        """Draw once: True with probability ``p`` (no draw when p is 0 or 1)."""
        if self.p >= 1.0:
            return True
        return self.p > 0.0 and self.rng.random() < self.p


class TemporalJitter(RandomStep):
    """Sample frames with ``sampler`` (default: the released random sampler), then with
    probability ``p`` shift each sampled index by an integer in [−max_shift, max_shift],
    clamped to [0, L − 1] (indices are not re-sorted: a shifted frame may land before its
    neighbour, which is the jitter). Frames are re-read from the unsampled clip.

    Reads ``keypoint`` (L, V, 2); writes ``keypoint`` (clip_len, V, 2), ``total_frames``,
    ``frame_inds`` (clip_len,) and ``index_t = 2 · frame_inds / L − 1`` of the indices used.
    """

    def __init__(self, sampler: Callable[[Results], Results] | None = None, max_shift: int = 3,
                 p: float = 0.2, seed: int | None = None) -> None:
        super().__init__(p, seed)
        self.sampler = sampler if sampler is not None else RandomSampleFrames(CLIP_LEN, seed=seed)
        self.max_shift = int(max_shift)

    def __call__(self, results: Results) -> Results:
        full = results["keypoint"]
        results = self.sampler(results)
        if self.max_shift > 0 and self.fires():
            total = full.shape[0]
            inds = results["frame_inds"] + self.rng.integers(-self.max_shift, self.max_shift + 1,
                                                             size=results["frame_inds"].shape)
            results["keypoint"] = full
            results = _take_frames(results, np.clip(inds, 0, total - 1))
        return results

    def __repr__(self) -> str:
        return f"TemporalJitter({self.sampler!r}, max_shift={self.max_shift}, p={self.p})"


class RandomRotation(RandomStep):
    """With probability ``p`` rotate every point about the origin by one angle drawn
    uniformly from ±``max_degrees``. Reads/writes ``keypoint`` (T, V, 2)."""

    def __init__(self, max_degrees: float = 15.0, p: float = 0.2, seed: int | None = None) -> None:
        super().__init__(p, seed)
        self.max_degrees = float(max_degrees)

    def __call__(self, results: Results) -> Results:
        if self.fires():
            a = math.radians(self.rng.uniform(-self.max_degrees, self.max_degrees))
            rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=np.float32)
            results["keypoint"] = (results["keypoint"] @ rot.T).astype(np.float32)
        return results

    def __repr__(self) -> str:
        return f"RandomRotation(±{self.max_degrees}°, p={self.p})"


class RandomScaling(RandomStep):
    """With probability ``p`` multiply every coordinate by one factor drawn uniformly from
    [``low``, ``high``]. Reads/writes ``keypoint``."""

    def __init__(self, low: float = 0.9, high: float = 1.1, p: float = 0.2, seed: int | None = None) -> None:
        super().__init__(p, seed)
        if not 0 < low <= high:
            raise ValueError(f"scale range must satisfy 0 < low <= high, got [{low}, {high}]")
        self.low, self.high = float(low), float(high)

    def __call__(self, results: Results) -> Results:
        if self.fires():
            s = np.float32(self.rng.uniform(self.low, self.high))
            results["keypoint"] = (results["keypoint"] * s).astype(np.float32)
        return results

    def __repr__(self) -> str:
        return f"RandomScaling([{self.low}, {self.high}], p={self.p})"


class RandomTranslation(RandomStep):
    """With probability ``p`` add one offset per axis, each uniform in ±``max_offset``, to
    every point. Reads/writes ``keypoint``."""

    def __init__(self, max_offset: float = 0.1, p: float = 0.2, seed: int | None = None) -> None:
        super().__init__(p, seed)
        self.max_offset = float(max_offset)

    def __call__(self, results: Results) -> Results:
        if self.fires():
            kp = results["keypoint"]
            shift = self.rng.uniform(-self.max_offset, self.max_offset, size=kp.shape[-1])
            results["keypoint"] = (kp + shift.astype(np.float32)).astype(np.float32)
        return results

    def __repr__(self) -> str:
        return f"RandomTranslation(±{self.max_offset}, p={self.p})"


class AxisMask(RandomStep):
    """Released code's axis masking: with probability ``p`` set one coordinate axis (x or y,
    chosen uniformly) to 0 in every frame and joint. Reads/writes ``keypoint``."""

    def __call__(self, results: Results) -> Results:
        if self.fires():
            kp = results["keypoint"].copy()
            kp[..., int(self.rng.integers(kp.shape[-1]))] = 0
            results["keypoint"] = kp
        return results

    def __repr__(self) -> str:
        return f"AxisMask(p={self.p})"


class TemporalBlockDropout(RandomStep):
    """Released code's temporal block dropout: with probability ``p`` set a run of
    ``min_len``..``max_len`` consecutive sampled frames (all joints) to 0.
    Reads/writes ``keypoint`` (T, V, 2); ``index_t`` is left as it is."""

    def __init__(self, min_len: int = 4, max_len: int = 16, p: float = 0.2, seed: int | None = None) -> None:
        super().__init__(p, seed)
        if not 1 <= min_len <= max_len:
            raise ValueError(f"block length range must satisfy 1 <= min <= max, got [{min_len}, {max_len}]")
        self.min_len, self.max_len = int(min_len), int(max_len)

    def __call__(self, results: Results) -> Results:
        if self.fires():
            kp = results["keypoint"].copy()
            t = kp.shape[0]
            length = min(int(self.rng.integers(self.min_len, self.max_len + 1)), t)
            start = int(self.rng.integers(0, t - length + 1))
            kp[start:start + length] = 0
            results["keypoint"] = kp
        return results

    def __repr__(self) -> str:
        return f"TemporalBlockDropout([{self.min_len}, {self.max_len}] frames, p={self.p})"


# Defaults of the ``augment`` section of a config: STCA as the paper describes it, at the MA-52
# probability (docs/mmn-computation.md §1). The one source of these values: configs state only
# what they change (the released recipe in configs/_base_.py adds the masking steps).
AUGMENT_DEFAULTS: dict[str, Any] = dict(
    p=0.2, rotate_degrees=15.0, scale=(0.9, 1.1), translate=0.1, jitter_frames=3,
    axis_mask=False, block_dropout=False, block_len=(4, 16))


def _seed_sequence(seed: int | np.random.SeedSequence | None) -> np.random.SeedSequence:
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)


def stca_steps(p: float = 0.2, rotate_degrees: float = 15.0, scale: tuple[float, float] = (0.9, 1.1),
               translate: float = 0.1, seed: int | np.random.SeedSequence | None = None) -> list[RandomStep]:
    """The spatial part of STCA: rotation, scaling, translation, each with probability ``p``.
    (The temporal part, :class:`TemporalJitter`, wraps the sampler.)"""
    ss = _seed_sequence(seed).spawn(3)
    return [RandomRotation(rotate_degrees, p, ss[0]), RandomScaling(scale[0], scale[1], p, ss[1]),
            RandomTranslation(translate, p, ss[2])]


def train_pipeline(layout: SkeletonLayout, modality: str = "joint", clip_len: int = CLIP_LEN,
                   augment: Mapping[str, Any] | None = None,
                   seed: int | np.random.SeedSequence | None = None) -> Compose:
    """The training chain for ``layout``/``modality`` with the ``augment`` options
    (keys of :data:`AUGMENT_DEFAULTS`; ``p=0`` turns STCA off). Output keys as
    :func:`mmn.preprocess.eval_pipeline`: ``inputs`` (2, clip_len, V, 1), ``index_t``."""
    opts = {**AUGMENT_DEFAULTS, **dict(augment or {})}
    unknown = set(opts) - set(AUGMENT_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown augment option(s) {sorted(unknown)}; known: {sorted(AUGMENT_DEFAULTS)}")
    p = float(opts["p"])
    ss = _seed_sequence(seed).spawn(5)
    steps: list[Callable[[Results], Results]] = list(normalise_steps(layout))
    steps.append(TemporalJitter(RandomSampleFrames(clip_len, seed=ss[0]), int(opts["jitter_frames"]), p, ss[1]))
    steps += stca_steps(p, float(opts["rotate_degrees"]), tuple(opts["scale"]), float(opts["translate"]), ss[2])
    if opts["axis_mask"]:
        steps.append(AxisMask(p, ss[3]))
    if opts["block_dropout"]:
        lo, hi = opts["block_len"]
        steps.append(TemporalBlockDropout(int(lo), int(hi), p, ss[4]))
    return Compose(steps + modality_steps(layout, modality))


def _random_steps(steps: Iterable[Any]) -> Iterable[Any]:
    for step in steps:
        if hasattr(step, "steps"):
            yield from _random_steps(step.steps)
            continue
        if hasattr(step, "rng"):
            yield step
        inner = getattr(step, "sampler", None)
        if inner is not None and hasattr(inner, "rng"):
            yield inner


def reseed(pipeline: Compose, seed: int) -> None:
    """Give every random step of ``pipeline`` (nested samplers included) its own Generator,
    spawned from ``seed``; deterministic for a given seed."""
    steps = list(_random_steps(pipeline.steps))
    for step, child in zip(steps, np.random.SeedSequence(seed).spawn(len(steps))):
        step.rng = np.random.default_rng(child)
