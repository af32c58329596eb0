"""Skeleton datasets: the MMN authors' release format and pyskl's, validated on load.

Two on-disk formats (``docs/data-formats.md`` has the details):

- **authors** (MA-52 / iMiGUE releases): ``{split}_data.pkl`` = ``{"annotations": [{"frame_dir",
  "keypoint" (M, T, V, 2), ...}, ...]}`` and ``{split}_label.pkl`` naming the clips and their
  labels. The label pickle is accepted as a list of ``{"file_name", "label", ...}`` records
  (what the authors' scripts write), a pair ``[names, labels]``, a dict
  ``{"file_name": [...], "label": [...]}`` or a dict ``{name: label}``. Clip order follows the
  label file. Without a label file the annotations' own ``label`` is used, or -1 (unlabelled,
  e.g. a challenge test set).
- **pyskl**: one pickle ``{"split": {name: [frame_dir, ...]}, "annotations": [{"frame_dir",
  "label", "keypoint" (M, T, V, C≥2), ...}], "label_names"?}``.

The first person (M index 0) and the first two coordinates are used. Every clip is checked:
real-valued 4-D keypoints, the layout's joint count, at least one frame, finite values within
±:data:`MAX_COORD` pixels, a whole-number label in [0, K) (or -1 where unlabelled clips are
allowed). A ``frame_dir`` used twice, a split or label file naming a clip twice are errors too
(a dict keyed by name would silently keep one of them). Errors name the file and the clip.

:class:`SkeletonDataset` turns clips into model-ready samples with a preprocessing pipeline.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from core.safe_pickle import load_data_pickle
from mmn.training.augment import reseed

FORMATS = ("authors", "pyskl")
UNLABELLED = -1
# Largest |coordinate| accepted, in pixels: far below where float32 preprocessing overflows
# (differences of ±3e38 are infinite, and the loss NaN), far above any pixel position and above
# the int32 sentinel 2**31 ≈ 2.1e9 that real datasets carry for lost joints (MSR Action3D: 20 of
# its 567 clips), which trains without harm. Anything larger is corrupt data.
MAX_COORD = 1e30


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the file and the clip."""


@dataclass
class Clip:
    """One clip: ``keypoint`` (L, V, 2) float32 pixels of one person, ``label`` (−1 if unknown)."""

    name: str
    keypoint: np.ndarray
    label: int


def _annotations(obj: Any, path: Path) -> list[dict]:
    anns = obj.get("annotations") if isinstance(obj, Mapping) else obj
    if not isinstance(anns, list) or not all(isinstance(a, Mapping) for a in anns):
        raise DatasetError(f"{path}: expected a dict with an 'annotations' list of dicts")
    return anns


def _label(value: Any, where: str) -> int:
    """A class index from a data or label file: an integer, or a float with a whole value
    (1.0 from a numeric column); anything else (1.7, 'x', True) is a :class:`DatasetError`
    naming ``where`` (the file and the clip)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DatasetError(f"{where}: label {_short(value)} is not a class index (a whole number)")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise DatasetError(f"{where}: label {value!r} is not a whole number; class indices are 0, 1, 2, ...")
    return int(value)


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters for error messages."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _coordinate_problem(kp: np.ndarray) -> str | None:
    """Why keypoints ``kp`` (T, V, 2), any real dtype, cannot be trained on, or None: a
    NaN/infinite value, or one beyond ±:data:`MAX_COORD` pixels."""
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~np.isfinite(kp)
        if bad.any():
            frames = np.unique(np.nonzero(bad)[0])
            return (f"has {int(bad.sum())} NaN/infinite coordinate(s) in {len(frames)} frame(s), first frame "
                    f"{int(frames[0])}; fill gaps first")
        big = np.abs(kp) > MAX_COORD
        if big.any():
            frames = np.unique(np.nonzero(big)[0])
            return (f"has {int(big.sum())} coordinate(s) beyond ±{MAX_COORD:g} px (largest "
                    f"{float(np.abs(kp).max()):.3g}) in {len(frames)} frame(s), first frame {int(frames[0])}: "
                    f"not pixel positions")
    return None


def _clip_from_annotation(ann: Mapping[str, Any], i: int, path: Path) -> Clip:
    name = str(ann.get("frame_dir", f"#{i}"))
    if "keypoint" not in ann:
        raise DatasetError(f"{path}: clip {name!r} has no 'keypoint'")
    try:
        kp = np.asarray(ann["keypoint"])
    except (ValueError, TypeError) as e:  # a ragged nested list: numpy's message names neither file nor clip
        raise DatasetError(f"{path}: clip {name!r} keypoint is not an (M, T, V, 2) array ({str(e)[:120]})") from None
    if kp.dtype.kind == "c":
        raise DatasetError(f"{path}: clip {name!r} has complex keypoints ({kp.dtype}); coordinates are real pixels")
    if kp.dtype.kind not in "iuf":
        raise DatasetError(f"{path}: clip {name!r} keypoint is not a numeric array (dtype {kp.dtype})")
    if kp.ndim != 4 or kp.shape[-1] < 2:
        raise DatasetError(f"{path}: clip {name!r} keypoint has shape {kp.shape}, expected (M, T, V, 2)")
    if kp.shape[0] < 1:
        raise DatasetError(f"{path}: clip {name!r} has no person (M = 0)")
    used = kp[0, ..., :2]
    problem = _coordinate_problem(used)  # before the float32 cast, which would overflow 1e39 to inf
    if problem:
        raise DatasetError(f"{path}: clip {name!r} {problem}")
    label = ann.get("label", UNLABELLED)
    return Clip(name, np.ascontiguousarray(used, dtype=np.float32),
                UNLABELLED if label is None else _label(label, f"{path}: clip {name!r}"))


def _by_name(clips: Sequence[Clip], path: Path) -> dict[str, Clip]:
    """Clips by name; a name used twice is a :class:`DatasetError` (one clip would vanish and
    the other be used twice)."""
    by_name: dict[str, Clip] = {}
    first: dict[str, int] = {}
    for i, c in enumerate(clips):
        if c.name in by_name:
            raise DatasetError(f"{path}: clip name (frame_dir) {c.name!r} appears twice in the annotations "
                               f"(#{first[c.name]} and #{i}); names must be unique")
        by_name[c.name], first[c.name] = c, i
    return by_name


def _first_repeat(names: Sequence[str]) -> tuple[str, int, int] | None:
    """The first name listed twice and its two positions, or None."""
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            return n, seen[n], i
        seen[n] = i
    return None


def read_label_file(path: str | os.PathLike) -> list[tuple[str, int]]:
    """``(name, label)`` pairs of an authors' label pickle in any accepted form (module doc)."""
    path = Path(path)
    obj = load_data_pickle(path)
    try:
        if isinstance(obj, Mapping) and "file_name" in obj and "label" in obj:
            names, labels = obj["file_name"], obj["label"]
        elif isinstance(obj, Mapping):
            names, labels = list(obj.keys()), list(obj.values())
        elif (isinstance(obj, (list, tuple)) and len(obj) == 2
              and all(isinstance(x, (list, tuple, np.ndarray)) for x in obj)):
            names, labels = obj
        elif isinstance(obj, (list, tuple)) and all(isinstance(r, Mapping) for r in obj):
            names = [r["file_name"] for r in obj]
            labels = [r["label"] for r in obj]
        else:
            raise TypeError(f"unsupported container {type(obj).__name__}")
        pairs = [(str(n), _label(l, f"clip {str(n)!r}")) for n, l in zip(names, labels, strict=True)]
    except (KeyError, TypeError, ValueError) as e:  # DatasetError of a label too: it names the clip
        raise DatasetError(f"{path}: not a label file of the form [{{'file_name', 'label'}}, ...], "
                           f"[names, labels] or {{'file_name': [...], 'label': [...]}} ({e})") from None
    return pairs


def read_authors(data_path: str | os.PathLike, label_path: str | os.PathLike | None = None) -> list[Clip]:
    """Clips of an authors'-format split, in label-file order when a label file is given."""
    data_path = Path(data_path)
    clips = [_clip_from_annotation(a, i, data_path)
             for i, a in enumerate(_annotations(load_data_pickle(data_path), data_path))]
    by_name = _by_name(clips, data_path)
    if label_path is None:
        return clips
    pairs = read_label_file(label_path)
    names = [n for n, _ in pairs]
    missing = [n for n in names if n not in by_name]
    extra = sorted(set(by_name) - set(names))
    repeat = _first_repeat(names)
    if missing or extra or repeat:
        problems = []
        if missing:
            problems.append(f"{len(missing)} labelled clip(s) not in the data, first {missing[0]!r}")
        if extra:
            problems.append(f"{len(extra)} clip(s) of the data have no label, first {extra[0]!r}")
        if repeat:
            problems.append(f"clip {repeat[0]!r} is labelled twice (entries #{repeat[1]} and #{repeat[2]})")
        raise DatasetError(f"{label_path} does not match {data_path}: {'; '.join(problems)}")
    return [Clip(n, by_name[n].keypoint, l) for n, l in pairs]


def read_pyskl(path: str | os.PathLike, split: str | None) -> tuple[list[Clip], list[str] | None]:
    """Clips of one split of a pyskl pickle (all clips when ``split`` is None), in the split's
    order, and the file's ``label_names`` if it has them."""
    path = Path(path)
    obj = load_data_pickle(path)
    anns = _annotations(obj, path)
    label_names = obj.get("label_names") if isinstance(obj, Mapping) else None
    clips = [_clip_from_annotation(a, i, path) for i, a in enumerate(anns)]
    by_name = _by_name(clips, path)
    if split is None:
        return clips, label_names
    splits = obj.get("split") if isinstance(obj, Mapping) else None
    if not isinstance(splits, Mapping) or split not in splits:
        known = sorted(splits) if isinstance(splits, Mapping) else []
        raise DatasetError(f"{path}: no split {split!r} (splits: {', '.join(known) or 'none'})")
    listed = splits[split]
    if isinstance(listed, (str, bytes)) or not isinstance(listed, (Sequence, np.ndarray)):
        raise DatasetError(f"{path}: split {split!r} is a {type(listed).__name__}, not a list of clip names")
    listed = [str(n) for n in listed]
    repeat = _first_repeat(listed)
    if repeat:
        raise DatasetError(f"{path}: split {split!r} lists clip {repeat[0]!r} twice (positions {repeat[1]} and "
                           f"{repeat[2]}); each clip may appear once")
    missing = [n for n in listed if n not in by_name]
    if missing:
        raise DatasetError(f"{path}: split {split!r} names {len(missing)} clip(s) missing from the "
                           f"annotations, first {missing[0]!r}")
    return [by_name[n] for n in listed], (list(label_names) if label_names is not None else None)


def validate(clips: Sequence[Clip], num_joints: int, num_classes: int, source: str,
             allow_unlabelled: bool = False) -> None:
    """Raise :class:`DatasetError` naming ``source`` and the first bad clip."""
    if not clips:
        raise DatasetError(f"{source}: the split holds no clips")
    for c in clips:
        kp = c.keypoint
        if kp.ndim != 3 or kp.shape[2] != 2:
            raise DatasetError(f"{source}: clip {c.name!r} keypoint has shape {kp.shape}, expected (T, V, 2)")
        if kp.shape[0] < 1:
            raise DatasetError(f"{source}: clip {c.name!r} is empty (0 frames)")
        if kp.shape[1] != num_joints:
            raise DatasetError(f"{source}: clip {c.name!r} has {kp.shape[1]} joints; the layout has {num_joints}")
        problem = _coordinate_problem(kp)
        if problem:
            raise DatasetError(f"{source}: clip {c.name!r} {problem}")
        if c.label == UNLABELLED and allow_unlabelled:
            continue
        if not 0 <= c.label < num_classes:
            raise DatasetError(f"{source}: clip {c.name!r} has label {c.label}, outside [0, {num_classes})")


def load_split(data_cfg: Mapping[str, Any], which: str, num_joints: int, num_classes: int,
               allow_unlabelled: bool = False) -> tuple[list[Clip], list[str] | None]:
    """Read and validate split ``which`` (``"train"``, ``"val"``, ``"test"``) of a config's
    ``data`` section. Returns the clips and the file's label names (pyskl) or None.

    ``data_cfg``: ``format`` (``"authors"`` | ``"pyskl"``), and either ``root`` (authors:
    files ``{root}/{split}_data.pkl`` and ``{root}/{split}_label.pkl``) or ``path`` (pyskl),
    plus one entry per split, e.g. ``train=dict(split="xsub_train")``. A split entry may name
    its files directly (``data=…``, ``label=…`` for authors; ``path=…`` for pyskl) and set
    ``label=None`` to read an unlabelled authors' split.
    """
    if which not in data_cfg:
        raise DatasetError(f"the config's data section has no {which!r} split")
    spec = {**{k: v for k, v in data_cfg.items() if not isinstance(v, Mapping)}, **dict(data_cfg[which])}
    fmt = spec.get("format")
    split = spec.get("split", which)
    names: list[str] | None = None
    if fmt == "authors":
        root = Path(spec.get("root", "."))
        data_path = Path(spec.get("data") or root / f"{split}_data.pkl")
        label_path = spec.get("label", root / f"{split}_label.pkl")
        if label_path is not None and not Path(label_path).is_file():
            if "label" in spec:
                raise DatasetError(f"{label_path}: no such label file")
            label_path = None  # no label file: annotation labels, or unlabelled
        if not data_path.is_file():
            raise DatasetError(f"{data_path}: no such data file")
        clips = read_authors(data_path, label_path)
        source = str(data_path)
    elif fmt == "pyskl":
        path = Path(spec.get("path") or spec.get("data") or "")
        if not path.is_file():
            raise DatasetError(f"{path}: no such data file")
        clips, names = read_pyskl(path, split)
        source = f"{path} [{split}]"
    else:
        raise DatasetError(f"data format must be one of {FORMATS}, got {fmt!r}")
    validate(clips, num_joints, num_classes, source, allow_unlabelled)
    return clips, names


class SkeletonDataset(Dataset):
    """Clips → samples ``{"inputs": (2, T, V, 1) float32, "index_t": (T,) float32,
    "label": int64, "index": int64}`` through ``pipeline`` (a :mod:`mmn.preprocess` /
    :mod:`mmn.training.augment` chain).

    Random steps are reseeded once per process that reads the dataset — a DataLoader worker
    from its torch worker seed, the main process from ``seed`` (else ``torch.initial_seed()``),
    either offset by the distributed rank — so workers and ranks draw different augmentations.
    """

    def __init__(self, clips: Sequence[Clip], pipeline: Callable[[dict], dict], seed: int | None = None) -> None:
        self.clips = list(clips)
        self.pipeline = pipeline
        self._seed = seed
        self._seeded_in: int | None = None

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.clips]

    @property
    def labels(self) -> np.ndarray:
        return np.array([c.label for c in self.clips], dtype=np.int64)

    def _ensure_seeded(self) -> None:
        if not hasattr(self.pipeline, "steps"):
            return
        info = torch.utils.data.get_worker_info()
        rank = int(os.environ.get("RANK", "0"))  # set by torchrun; ranks share torch seeds otherwise
        if info is not None:
            key, base = 1 + info.id, info.seed
        else:
            key, base = 0, self._seed if self._seed is not None else torch.initial_seed()
        if self._seeded_in != key:
            reseed(self.pipeline, (int(base) + 100_003 * rank) % 2**63)
            self._seeded_in = key

    def __getitem__(self, index: int) -> dict[str, Any]:
        self._ensure_seeded()
        c = self.clips[index]
        out = self.pipeline({"keypoint": c.keypoint.copy()})
        return {"inputs": torch.from_numpy(out["inputs"]),
                "index_t": torch.from_numpy(np.ascontiguousarray(out["index_t"], dtype=np.float32)),
                "label": torch.tensor(c.label, dtype=torch.int64),
                "index": torch.tensor(index, dtype=torch.int64)}
