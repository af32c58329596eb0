"""Precomputed pose results as an estimator: AlphaPose Halpe-136 JSON and pyskl pickles.

The results file is read once; :meth:`PrecomputedEstimator.process` then returns the people
stored for the frame index (no pixels needed: the video is only demuxed for its frame count
and timestamps). Frames without results give no person (MISSING after subject selection).

- **AlphaPose JSON** (``--format`` default, e.g. ``alphapose-results.json``): a list of
  ``{"image_id": "12.jpg", "keypoints": [x, y, score] * K, "box": [x, y, w, h], "score": s}``;
  the frame index is the number in ``image_id`` (AlphaPose names video frames ``0.jpg``,
  ``1.jpg``, ...; set ``index_base=1`` if yours start at 1). K = 136 (Halpe) or 133
  (COCO-WholeBody).
- **pyskl pickle**: a dict with ``annotations`` (or a bare list of them), each with
  ``frame_dir``, ``keypoint`` (M, T, K, 2) and optionally ``keypoint_score`` (M, T, K);
  the annotation is chosen by ``sample`` (its ``frame_dir`` or list position), else by the
  video's file stem, else the only one. K = 136, 133 or 44 (already MA-52). Pickles are read
  with the project's restricted unpickler (no code runs).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..keypoint_tables import table_for_count
from .base import Estimator, FramePoses, boxes_from_keypoints


class PrecomputedEstimator(Estimator):
    """Serve stored results frame by frame.

    Args:
        path: AlphaPose ``.json`` or pyskl ``.pkl``/``.pickle`` file.
        sample: pyskl only: ``frame_dir`` name or list index of the annotation to use.
        index_base: AlphaPose only: the number in the first frame's ``image_id``.
    """

    name = "precomputed"
    needs_pixels = False

    def __init__(self, path: str | os.PathLike, sample: str | int | None = None,
                 index_base: int = 0) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: precomputed results file not found")
        self.sample = sample
        self.index_base = int(index_base)
        self._frames: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        suffix = self.path.suffix.lower()
        if suffix == ".json":
            self._kind = "alphapose_json"
            self._load_alphapose()
        elif suffix in (".pkl", ".pickle"):
            self._kind = "pyskl_pickle"
            self._load_pyskl()
        else:
            raise ValueError(f"{self.path}: unknown results format (expected AlphaPose .json or "
                             f"pyskl .pkl)")

    # -- loading ----------------------------------------------------------------------------
    def _set_format(self, k: int) -> None:
        try:
            table = table_for_count(k)
        except ValueError as e:
            raise ValueError(f"{self.path}: {e}") from None
        self.keypoint_format, self.num_keypoints = table.name, table.num_keypoints

    def _load_alphapose(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{self.path}: not valid JSON ({e})") from None
        if not isinstance(data, list) or (data and not isinstance(data[0], dict)):
            raise ValueError(f"{self.path}: expected AlphaPose results (a JSON list of detections)")
        per_frame: dict[int, list[dict]] = {}
        k = None
        for n, det in enumerate(data):
            try:
                kps = np.asarray(det["keypoints"], np.float32)
                m = re.search(r"(\d+)(?!.*\d)", str(det["image_id"]))
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{self.path}: detection {n} lacks 'image_id' or 'keypoints' ({e})") from None
            if m is None or kps.size % 3:
                raise ValueError(f"{self.path}: detection {n}: image_id {det.get('image_id')!r} has no "
                                 f"frame number or keypoints are not x, y, score triples")
            if k is None:
                k = kps.size // 3
                self._set_format(k)
            elif kps.size // 3 != k:
                raise ValueError(f"{self.path}: detection {n} has {kps.size // 3} keypoints, others {k}")
            per_frame.setdefault(int(m.group(1)) - self.index_base, []).append(det)
        if k is None:
            self._set_format(136)
        for f, dets in per_frame.items():
            arr = np.stack([np.asarray(d["keypoints"], np.float32).reshape(-1, 3) for d in dets])
            kp, sc = arr[..., :2], np.clip(arr[..., 2], 0, 1)
            boxes = []
            for d, p_kp, p_sc in zip(dets, kp, sc):
                b = d.get("box") or d.get("bbox")
                if b is not None and len(b) == 4:
                    x, y, w, h = (float(v) for v in b)
                    boxes.append((x, y, x + w, y + h))
                else:
                    boxes.append(tuple(boxes_from_keypoints(p_kp[None], p_sc[None])[0]))
            box_scores = np.array([float(d.get("score", 1.0)) for d in dets], np.float32)
            self._frames[f] = (kp, sc, np.asarray(boxes, np.float32), box_scores)

    def _load_pyskl(self) -> None:
        from core.safe_pickle import load_data_pickle

        data = load_data_pickle(self.path)
        anns = data.get("annotations") if isinstance(data, dict) else data
        if isinstance(data, dict) and anns is None and "keypoint" in data:
            anns = [data]
        if not isinstance(anns, list) or not anns:
            raise ValueError(f"{self.path}: expected a pyskl pickle (dict with 'annotations' or a list)")
        if isinstance(self.sample, int):
            ann = anns[self.sample]
        elif isinstance(self.sample, str):
            match = [a for a in anns if a.get("frame_dir") == self.sample]
            if not match:
                raise ValueError(f"{self.path}: no annotation with frame_dir {self.sample!r}")
            ann = match[0]
        elif len(anns) == 1:
            ann = anns[0]
        else:
            ann = None  # chosen by the video's name in bind_video
        self._anns = anns
        self._by_video = ann is None  # several samples, none named: follow each video's name
        if ann is not None:
            self._use_annotation(ann)

    def _use_annotation(self, ann: dict) -> None:
        kp = np.asarray(ann["keypoint"], np.float32)
        if kp.ndim == 3:
            kp = kp[None]
        if kp.ndim != 4 or kp.shape[-1] < 2:
            raise ValueError(f"{self.path}: 'keypoint' must be (M, T, K, 2), got {kp.shape}")
        sc = ann.get("keypoint_score")
        if sc is None and kp.shape[-1] >= 3:
            sc = kp[..., 2]
        sc = np.ones(kp.shape[:3], np.float32) if sc is None else np.asarray(sc, np.float32).reshape(kp.shape[:3])
        kp = kp[..., :2]
        self._set_format(kp.shape[2])
        self.sample = ann.get("frame_dir", self.sample)
        self._frames = {}
        for t in range(kp.shape[1]):
            k, s = kp[:, t], np.clip(sc[:, t], 0, 1)
            # pyskl pads absent people / joints with zeros
            present = (s > 0) & (np.abs(k).sum(-1) > 0)
            k = np.where(present[..., None], k, np.nan).astype(np.float32)
            s = np.where(present, s, 0).astype(np.float32)
            keep = present.any(1)
            if keep.any():
                self._frames[t] = (k[keep], s[keep], boxes_from_keypoints(k[keep], s[keep]),
                                   np.ones(int(keep.sum()), np.float32))

    def bind_video(self, video_path: str | os.PathLike) -> None:
        """For a multi-sample pyskl pickle with no ``sample``: use the one named like the video
        (``frame_dir`` equal to its file stem). Called by ``extract_skeleton`` for each video."""
        if self._kind == "pyskl_pickle" and self._by_video:
            stem = Path(video_path).stem
            match = [a for a in self._anns if a.get("frame_dir") == stem]
            if not match:
                raise ValueError(f"{self.path}: no annotation with frame_dir {stem!r}; pass sample=")
            self._use_annotation(match[0])

    # -- estimator interface ----------------------------------------------------------------
    def process(self, frame: np.ndarray | None, index: int, timestamp: float) -> FramePoses:
        got = self._frames.get(index)
        if got is None:
            return FramePoses.empty(index, timestamp, self.num_keypoints)
        kp, sc, boxes, box_scores = got
        return FramePoses(index, timestamp, kp.copy(), sc.copy(), boxes.copy(), box_scores.copy())

    @property
    def num_result_frames(self) -> int:
        return len(self._frames)

    def version(self) -> str:
        return f"precomputed {self._kind}"

    def options(self) -> dict[str, Any]:
        return {"file": self.path.name, "kind": self._kind, "sample": self.sample,
                "index_base": self.index_base}
