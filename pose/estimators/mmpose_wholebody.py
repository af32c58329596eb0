"""mmpose backend (optional extra): top-down COCO-WholeBody-133 models — RTMW, DWPose, RTMPose.

Native output: format ``coco_wholebody_133`` in pixels of the frame, scores clipped to [0, 1]
(SimCC scores are not probabilities; mmpose's own visualiser thresholds them at 0.3).

Person boxes: from an mmdet detector when ``det_config`` is given (the ``max_people`` best
person boxes above ``det_score_threshold``, estimated in one batch), else a tracked box:
the whole frame for the first frame, then the box around the previous frame's confident
keypoints grown by ``box_margin`` (back to the whole frame when too few keypoints were
confident). Runs on CUDA when available.

mmpose is imported lazily, and ``mmpose.apis`` never (it imports torchvision for its
visualiser): the model is built from the config with mmpose's registry and run through its
test pipeline, as ``mmpose.apis.init_model`` / ``inference_topdown`` do. Without mmcv's
compiled ops (mmcv-lite), :mod:`pose.estimators._mmcv_ops_stub` stands in for ``mmcv.ops``.
Checkpoints load weights-only (``torch.load(weights_only=True)``, numpy types allow-listed),
optionally after checking their sha256.

Configs: a path, a path relative to mmpose's bundled ``configs/`` folder, or a bare file name
found there, e.g. ``rtmw-m_8xb1024-270e_cocktail14-256x192.py``. ``rtmpose-*`` COCO-WholeBody
configs name an mmdet backbone scope, which is dropped so that mmpose's own CSPNeXt is used.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from core.hashing import sha256_file

from .base import Estimator, FramePoses

DEFAULT_CONFIG = "rtmw-m_8xb1024-270e_cocktail14-256x192.py"


class PoseCheckpointError(RuntimeError):
    pass


def check_download_digest(path: str | os.PathLike, expected: str | None) -> None:
    """Raise :class:`PoseCheckpointError` unless the file's sha256 starts with ``expected``.

    ``expected`` may be the full 64-hex digest or a prefix of at least 8 (OpenMMLab file names
    carry the first 8, e.g. ``...-cd5e845c_20230123.pth``).
    """
    if not expected:
        return
    expected = expected.strip().lower()
    if len(expected) < 8 or any(c not in "0123456789abcdef" for c in expected):
        raise ValueError(f"sha256 must be hex, at least 8 characters, got {expected!r}")
    actual = sha256_file(path)
    if not actual.startswith(expected):
        raise PoseCheckpointError(f"{path}: sha256 {actual} does not match the expected {expected}")


def mmpose_config_dir() -> Path:
    """mmpose's bundled files: ``configs/`` (pose models) and ``demo/mmdetection_cfg/`` (detectors)."""
    import mmpose

    return Path(mmpose.__file__).parent / ".mim"


def resolve_config(config: str | os.PathLike) -> Path:
    """A config file: as given, relative to mmpose's bundled ``.mim`` or ``.mim/configs``
    folder, or found there by file name."""
    p = Path(config)
    if p.is_file():
        return p
    root = mmpose_config_dir()
    for base in (root, root / "configs"):
        if (base / p).is_file():
            return base / p
    found = sorted(q for q in root.rglob(p.name) if q.suffix == ".py" and "__pycache__" not in q.parts)
    if found:
        return found[0]
    raise FileNotFoundError(f"mmpose config {config!r} not found (looked in {root})")


def load_weights(model: Any, checkpoint: str | os.PathLike, sha256: str | None = None,
                 strict: bool = True) -> dict:
    """Load a checkpoint weights-only into ``model``; returns the checkpoint's ``meta`` dict.

    Raises:
        PoseCheckpointError: missing file, wrong sha256, unreadable, or (``strict``) keys that
            do not match the model (a checkpoint for another config).
    """
    import torch

    path = Path(checkpoint)
    if not path.is_file():
        raise PoseCheckpointError(f"{path}: checkpoint file not found")
    check_download_digest(path, sha256)
    safe = [np.ndarray, np.dtype]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        try:
            m = __import__(mod, fromlist=["_reconstruct", "scalar"])
            safe += [m._reconstruct, m.scalar]
        except (ImportError, AttributeError):
            pass
    safe += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    try:
        with torch.serialization.safe_globals(safe):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report any unpickling failure with the file name
        raise PoseCheckpointError(f"{path}: cannot load weights-only ({type(e).__name__}: {e})") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise PoseCheckpointError(f"{path}: no state_dict in checkpoint")
    state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if strict and (missing or unexpected):
        raise PoseCheckpointError(f"{path}: checkpoint does not fit the config's model: "
                              f"{len(missing)} missing keys (e.g. {missing[:3]}), "
                              f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    meta = ckpt.get("meta", {}) if isinstance(ckpt, dict) else {}
    return meta if isinstance(meta, dict) else {}


class MMPoseWholeBodyEstimator(Estimator):
    """Top-down COCO-WholeBody-133 estimation with mmpose.

    Args:
        config: pose config (see module docstring); default RTMW-m 256x192.
        checkpoint: local checkpoint file; None only with ``random_init=True`` (tests).
        checkpoint_sha256: expected sha256 (full or >= 8-hex prefix) of ``checkpoint``.
        random_init: allow running without weights (random output; for wiring tests).
        device: ``"cuda"``/``"cpu"``/...; default CUDA when available.
        det_config, det_checkpoint, det_checkpoint_sha256: an mmdet person detector (optional).
        det_score_threshold: minimum detector score of a person box.
        det_person_label: the detector's class id for "person" (0 in COCO and person-only models).
        max_people: at most this many detected people are estimated per frame (one batch).
        box_margin: tracked box growth around the previous skeleton, per side, as a fraction
            of its size (mmpose's pipeline pads the box by 1.25 again).
        box_keypoint_threshold, box_min_keypoints: keypoints used for the tracked box.
        num_threads: ``torch.set_num_threads`` for CPU inference (None: leave as is).
    """

    name = "mmpose"
    keypoint_format = "coco_wholebody_133"
    num_keypoints = 133

    def __init__(self, config: str | os.PathLike = DEFAULT_CONFIG, checkpoint: str | os.PathLike | None = None,
                 checkpoint_sha256: str | None = None, random_init: bool = False,
                 device: str | None = None, det_config: str | os.PathLike | None = None,
                 det_checkpoint: str | os.PathLike | None = None,
                 det_checkpoint_sha256: str | None = None, det_score_threshold: float = 0.5,
                 det_person_label: int = 0, max_people: int = 3, box_margin: float = 0.1,
                 box_keypoint_threshold: float = 0.3, box_min_keypoints: int = 6,
                 num_threads: int | None = None) -> None:
        if checkpoint is None and not random_init:
            raise ValueError("the mmpose backend needs checkpoint=PATH to a local checkpoint "
                             "(see docs/pose.md for which to fetch); random_init=True runs "
                             "untrained weights, for tests only")
        try:
            import torch

            from . import _mmcv_ops_stub

            self.uses_ops_stub = _mmcv_ops_stub.install()
            import mmpose  # noqa: F401
            from mmengine.config import Config
            from mmengine.dataset import Compose
            from mmengine.model.utils import revert_sync_batchnorm
            from mmengine.registry import init_default_scope
            from mmpose.datasets.datasets.utils import parse_pose_metainfo
            from mmpose.models.builder import build_pose_estimator
        except ImportError as e:
            raise ImportError(f"the mmpose backend needs the mmpose extra (see docs/pose.md: "
                              f"mmpose==1.3.2, mmcv-lite==2.1.0, mmdet==3.3.0 with --no-deps): {e}") from e
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.config_path = resolve_config(config)
        cfg = Config.fromfile(str(self.config_path))
        backbone = cfg.model.get("backbone", {})
        if backbone.get("_scope_") == "mmdet":
            backbone.pop("_scope_")
        if "init_cfg" in backbone:
            backbone.init_cfg = None
        cfg.model.train_cfg = None
        init_default_scope(cfg.get("default_scope", "mmpose"))
        model = revert_sync_batchnorm(build_pose_estimator(cfg.model))
        meta: dict = {}
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        if self.checkpoint is not None:
            meta = load_weights(model, self.checkpoint, checkpoint_sha256)
        dataset_meta = meta.get("dataset_meta") or parse_pose_metainfo(
            dict(from_file="configs/_base_/datasets/coco_wholebody.py"))
        if int(dataset_meta.get("num_keypoints", 0)) != 133:
            raise ValueError(f"{self.config_path.name}: not a COCO-WholeBody-133 model "
                             f"({dataset_meta.get('num_keypoints')} keypoints)")
        model.dataset_meta = dataset_meta
        model.cfg = cfg
        self.model = model.to(self.device).eval()
        self.pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
        self.random_init = checkpoint is None

        self.detector = None
        self.det_config = None
        if det_config is not None:
            self._init_detector(det_config, det_checkpoint, det_checkpoint_sha256, random_init)
        self.det_score_threshold = float(det_score_threshold)
        self.det_person_label = int(det_person_label)
        self.max_people = int(max_people)
        self.box_margin = float(box_margin)
        self.box_keypoint_threshold = float(box_keypoint_threshold)
        self.box_min_keypoints = int(box_min_keypoints)
        self._prev: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def multi_person(self) -> bool:  # type: ignore[override]
        """With a person detector every person found (up to ``max_people``) is estimated."""
        return self.detector is not None and self.max_people > 1

    def _init_detector(self, det_config, det_checkpoint, sha256, random_init) -> None:
        if det_checkpoint is None and not random_init:
            raise ValueError("det_config needs det_checkpoint=PATH (or random_init=True for tests)")
        from mmdet.apis import init_detector
        from mmengine.config import Config

        self.det_config = resolve_config(det_config)
        cfg = Config.fromfile(str(self.det_config))
        det = init_detector(cfg, None, device=self.device)
        if det_checkpoint is not None:
            load_weights(det, det_checkpoint, sha256)
        self.detector = det
        self.det_checkpoint = None if det_checkpoint is None else Path(det_checkpoint)

    # -- boxes -------------------------------------------------------------------------------
    def _tracked_box(self, w: int, h: int) -> np.ndarray:
        full = np.array([0, 0, w, h], np.float32)
        if self._prev is None:
            return full
        kp, sc = self._prev
        ok = np.isfinite(kp).all(-1) & (sc >= self.box_keypoint_threshold)
        ok &= (kp[:, 0] >= 0) & (kp[:, 0] < w) & (kp[:, 1] >= 0) & (kp[:, 1] < h)
        if ok.sum() < self.box_min_keypoints:
            return full
        (x1, y1), (x2, y2) = kp[ok].min(0), kp[ok].max(0)
        mx, my = self.box_margin * (x2 - x1), self.box_margin * (y2 - y1)
        box = np.array([max(0, x1 - mx), max(0, y1 - my), min(w, x2 + mx), min(h, y2 + my)], np.float32)
        if box[2] - box[0] < 16 or box[3] - box[1] < 16:
            return full
        return box

    def _detect(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from mmdet.apis import inference_detector

        inst = inference_detector(self.detector, frame).pred_instances
        boxes = inst.bboxes.cpu().numpy().astype(np.float32)
        scores = inst.scores.cpu().numpy().astype(np.float32)
        labels = inst.labels.cpu().numpy()
        keep = (labels == self.det_person_label) & (scores >= self.det_score_threshold)
        boxes, scores = boxes[keep], scores[keep]
        order = np.argsort(-scores)[: self.max_people]
        return boxes[order], scores[order]

    # -- estimator interface -----------------------------------------------------------------
    def process(self, frame: np.ndarray | None, index: int, timestamp: float) -> FramePoses:
        import torch
        from mmengine.dataset import pseudo_collate

        if frame is None or frame.ndim != 3:
            raise ValueError(f"frame {index}: expected an (H, W, 3) BGR image")
        h, w = frame.shape[:2]
        boxes = box_scores = None
        if self.detector is not None:
            boxes, box_scores = self._detect(frame)
        if boxes is None or len(boxes) == 0:
            boxes = self._tracked_box(w, h)[None]
            box_scores = np.ones(1, np.float32)
        data = []
        for box in boxes:
            info = dict(img=frame, bbox=box[None].astype(np.float32), bbox_score=np.ones(1, np.float32))
            info.update(self.model.dataset_meta)
            data.append(self.pipeline(info))
        with torch.no_grad():
            results = self.model.test_step(pseudo_collate(data))
        kp = np.stack([r.pred_instances.keypoints[0] for r in results]).astype(np.float32)
        sc = np.stack([r.pred_instances.keypoint_scores[0] for r in results]).astype(np.float32)
        sc = np.clip(np.nan_to_num(sc), 0.0, 1.0)
        best = int(np.argmax(sc.mean(1)))
        self._prev = (kp[best], sc[best])  # next frame's box when there is no detection
        return FramePoses(index, timestamp, kp, sc, boxes.astype(np.float32),
                          np.asarray(box_scores, np.float32))

    def reset(self) -> None:
        self._prev = None

    def version(self) -> str:
        import mmpose

        return f"mmpose {mmpose.__version__}"

    def options(self) -> dict[str, Any]:
        return {"config": self.config_path.name,
                "checkpoint": None if self.checkpoint is None else self.checkpoint.name,
                "random_init": self.random_init, "device": self.device,
                "detector": None if self.det_config is None else self.det_config.name,
                "det_score_threshold": self.det_score_threshold, "max_people": self.max_people,
                "box_margin": self.box_margin, "box_keypoint_threshold": self.box_keypoint_threshold,
                "mmcv_ops_stub": self.uses_ops_stub}

    def close(self) -> None:
        self._prev = None
