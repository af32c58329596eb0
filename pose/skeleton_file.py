"""The skeleton file: one HDF5 per video, schema-versioned (documented in docs/skeleton-file.md).

:class:`Skeleton` holds one subject's skeleton for every decoded frame;
:func:`write_skeleton` writes it atomically (temporary name, then ``os.replace``),
:func:`read_skeleton` validates while loading and :func:`export_npy` writes the keypoints as
a ``.npy`` array for MMN.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_path, atomic_write_bytes
from core.layouts import LAYOUTS, MA52_44, SkeletonLayout
from core.signals import deferred_interrupt

from .keypoint_tables import ESTIMATED, FILLED, MISSING

SCHEMA = "mmn-skeleton"
SCHEMA_VERSION = 1
KNOWN_FLAGS = ESTIMATED | FILLED | MISSING


class SkeletonFileError(ValueError):
    """A skeleton file (or Skeleton) that does not follow the schema; names file and problem."""

    def __init__(self, path: str | os.PathLike | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


@dataclass
class Skeleton:
    """One subject's skeleton over a whole video.

    Attributes:
        keypoints: (N, V, 2) float32, pixels of the decoded frame (x right, y down); NaN
            where a joint is MISSING.
        scores: (N, V) float32 in [0, 1]; 0 where MISSING.
        timestamps: (N,) float64 seconds, non-decreasing.
        flags: (N, V) uint8 bits: 1 ESTIMATED, 2 FILLED, 4 MISSING.
        meta: JSON-serialisable dict: ``video``, ``backend``, ``subject``, ``postprocess``...
        layout: the joint set (default :data:`~core.layouts.MA52_44`).
        region_motion: (N, P) float32 pixel motion energy of each body part (``layout.parts``
            order; grey levels 0-255 per pixel, NaN where the part is absent), or None where
            it was not measured (:mod:`pose.region_motion`).
    """

    keypoints: np.ndarray
    scores: np.ndarray
    timestamps: np.ndarray
    flags: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    layout: SkeletonLayout = MA52_44
    region_motion: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])

    def validate(self, path: str | os.PathLike | None = None) -> Skeleton:
        """Check shapes, dtypes and invariants; raise :class:`SkeletonFileError` naming the problem."""
        v = self.layout.num_joints
        kp, sc, ts, fl = self.keypoints, self.scores, self.timestamps, self.flags
        if kp.ndim != 3 or kp.shape[1:] != (v, 2):
            raise SkeletonFileError(path, f"keypoints must have shape (N, {v}, 2) for layout "
                                          f"{self.layout.name!r}, got {kp.shape}")
        n = kp.shape[0]
        for name, arr, shape in (("scores", sc, (n, v)), ("flags", fl, (n, v)), ("timestamps", ts, (n,))):
            if arr.shape != shape:
                raise SkeletonFileError(path, f"{name} must have shape {shape} to match keypoints "
                                              f"{kp.shape}, got {arr.shape}")
        for name, arr, dtype in (("keypoints", kp, np.float32), ("scores", sc, np.float32),
                                 ("timestamps", ts, np.float64), ("flags", fl, np.uint8)):
            if arr.dtype != dtype:
                raise SkeletonFileError(path, f"{name} must be {np.dtype(dtype).name}, got {arr.dtype}")
        if fl.size and (fl & ~np.uint8(KNOWN_FLAGS)).any():
            raise SkeletonFileError(path, f"flags hold unknown bits (known: {KNOWN_FLAGS:#x})")
        missing = (fl & MISSING).astype(bool)
        finite = np.isfinite(kp).all(-1)
        if (missing == finite).any():
            f, j = np.argwhere(missing == finite)[0]
            raise SkeletonFileError(path, f"frame {f} joint {j}: keypoints must be NaN exactly where "
                                          f"the MISSING flag is set")
        if (~np.isfinite(sc)).any() or (sc < 0).any() or (sc > 1).any() or (sc[missing] != 0).any():
            raise SkeletonFileError(path, "scores must lie in [0, 1] and be 0 where MISSING")
        if (~np.isfinite(ts)).any() or (np.diff(ts) < 0).any():
            raise SkeletonFileError(path, "timestamps must be finite and non-decreasing")
        rm = self.region_motion
        if rm is not None and (rm.shape != (n, len(self.layout.parts)) or rm.dtype != np.float32):
            raise SkeletonFileError(path, f"region_motion must be float32 of shape {(n, len(self.layout.parts))}, "
                                          f"got {rm.dtype} {rm.shape}")
        return self

    def filled_keypoints(self, fill: float = 0.0) -> np.ndarray:
        """Keypoints (N, V, 2) float32 with MISSING joints set to ``fill`` (MMN cannot take NaN)."""
        return np.where(np.isfinite(self.keypoints), self.keypoints, np.float32(fill)).astype(np.float32)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"meta value of type {type(o).__name__} is not JSON-serialisable")


def skeleton_bytes(skeleton: Skeleton, *, compression: str | None = "gzip") -> bytes:
    """The HDF5 file of a validated ``skeleton``, built in memory (HDF5's core driver, no
    backing file): HDF5 itself never writes to disk, so a full disk meets plain Python I/O,
    which reports it, instead of the HDF5 library, which crashed on it. Ctrl-C during the
    build is held until it is done (h5py's finalisers would swallow it)."""
    import h5py

    meta_json = json.dumps(skeleton.meta, default=_json_default, sort_keys=True)
    with deferred_interrupt(), h5py.File(f"skeleton-{id(skeleton)}.h5", "w", driver="core", backing_store=False) as f:
        f.attrs["schema"] = SCHEMA
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["layout"] = skeleton.layout.name
        f.attrs["joint_names"] = json.dumps(list(skeleton.layout.joint_names))
        f.attrs["num_frames"] = skeleton.num_frames
        f.attrs["meta"] = meta_json
        kw = {"compression": compression} if compression and skeleton.num_frames else {}
        f.create_dataset("keypoints", data=skeleton.keypoints, **kw)
        f.create_dataset("scores", data=skeleton.scores, **kw)
        f.create_dataset("timestamps", data=skeleton.timestamps, **kw)
        f.create_dataset("flags", data=skeleton.flags, **kw)
        if skeleton.region_motion is not None:
            f.create_dataset("region_motion", data=skeleton.region_motion, **kw)
        f.flush()
        return f.id.get_file_image()


def write_skeleton(skeleton: Skeleton, path: str | os.PathLike, *, compression: str | None = "gzip",
                   ) -> Path:
    """Validate and write ``skeleton`` to ``path`` (HDF5), atomically. Returns the path.
    Raises OSError (e.g. a full disk) with nothing left behind."""
    path = Path(path)
    skeleton.validate(path)
    return atomic_write_bytes(path, skeleton_bytes(skeleton, compression=compression))


def _str_attr(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def read_skeleton(path: str | os.PathLike) -> Skeleton:
    """Load and validate a skeleton file.

    Raises:
        SkeletonFileError: not found, not HDF5, another schema or version, missing datasets,
            wrong shapes or dtypes, or broken invariants; the message names file and problem.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise SkeletonFileError(path, "file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise SkeletonFileError(path, f"not a readable HDF5 file ({e})") from None
    with f:
        schema = _str_attr(f.attrs.get("schema", ""))
        if schema != SCHEMA:
            raise SkeletonFileError(path, f"not a skeleton file (schema attribute {schema!r}, "
                                          f"expected {SCHEMA!r})")
        version = f.attrs.get("schema_version")
        version = version.item() if isinstance(version, np.generic) else version
        if not isinstance(version, int) or version != SCHEMA_VERSION:
            raise SkeletonFileError(path, f"unsupported skeleton schema version {version!r}; this "
                                          f"reader supports version {SCHEMA_VERSION}")
        layout_name = _str_attr(f.attrs.get("layout", ""))
        if layout_name not in LAYOUTS:
            raise SkeletonFileError(path, f"unknown layout {layout_name!r} (known: {', '.join(LAYOUTS)})")
        layout = LAYOUTS[layout_name]
        names = json.loads(_str_attr(f.attrs.get("joint_names", "[]")))
        if tuple(names) != layout.joint_names:
            raise SkeletonFileError(path, f"joint names do not match layout {layout_name!r}")
        arrays = {}
        for name in ("keypoints", "scores", "timestamps", "flags"):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise SkeletonFileError(path, f"dataset {name!r} is missing")
            arrays[name] = f[name][()]
        try:
            meta = json.loads(_str_attr(f.attrs.get("meta", "{}")))
        except json.JSONDecodeError as e:
            raise SkeletonFileError(path, f"meta attribute is not valid JSON ({e})") from None
        n = int(f.attrs.get("num_frames", -1))
        region = f["region_motion"][()] if isinstance(f.get("region_motion"), h5py.Dataset) else None
    skel = Skeleton(arrays["keypoints"], arrays["scores"], arrays["timestamps"], arrays["flags"],
                    meta, layout, region)
    skel.validate(path)
    if n != skel.num_frames:
        raise SkeletonFileError(path, f"num_frames attribute {n} does not match {skel.num_frames} frames")
    return skel


def export_npy(skeleton: Skeleton, path: str | os.PathLike, *, with_scores: bool = False,
               fill: float = 0.0) -> Path:
    """Write the keypoints as ``.npy``: (N, V, 2) float32 pixels, or (N, V, 3) with scores.

    MISSING joints become ``fill`` (0 by default, as in pyskl/AlphaPose data) with score 0.
    """
    path = Path(path)
    arr = skeleton.filled_keypoints(fill)
    if with_scores:
        arr = np.concatenate([arr, skeleton.scores[..., None]], axis=-1).astype(np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr)
    return path
