"""A stand-in for ``mmcv.ops`` when mmcv's compiled ops are absent (mmcv-lite).

mmpose and mmdet import names from ``mmcv.ops`` at module load (deformable convolutions,
RoI ops, NMS...) although the top-down whole-body models (RTMW, DWPose, RTMPose) never run
them. :func:`install` registers this stand-in under ``mmcv.ops`` and every ``mmcv.ops.*``
submodule, *only if* the real ``mmcv.ops`` cannot be imported:

- ``nms`` and ``batched_nms`` are real, pure-PyTorch implementations with mmcv's signatures
  (enough for mmdet detectors such as RTMDet);
- every other name is a placeholder that raises :class:`MMCVOpsUnavailable` when it is
  called or instantiated, so a model that truly needs a compiled op fails with a clear message.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

STUB_FLAG = "__pose_mmcv_ops_stub__"


class MMCVOpsUnavailable(RuntimeError):
    pass


def _placeholder(name: str) -> type:
    def _fail(*args: Any, **kwargs: Any) -> Any:
        raise MMCVOpsUnavailable(
            f"mmcv.ops.{name} needs mmcv's compiled ops, which mmcv-lite lacks; this model is not "
            f"supported by the project's mmpose install (use an RTMW / DWPose / RTMPose top-down "
            f"model, or install the full mmcv)")

    return type(name, (), {"__init__": _fail, "__call__": _fail, "__new__": lambda cls, *a, **k: _fail()})


def nms(boxes, scores, iou_threshold: float, offset: int = 0, score_threshold: float = 0.0,
        max_num: int = -1):
    """Greedy NMS. Returns ``(dets (K, 5) = boxes + score, kept indices (K,))`` like mmcv."""
    import torch

    boxes_t = torch.as_tensor(boxes, dtype=torch.float32)
    scores_t = torch.as_tensor(scores, dtype=torch.float32)
    valid = torch.nonzero(scores_t > score_threshold).flatten() if score_threshold > 0 else \
        torch.arange(len(scores_t), device=scores_t.device)
    order = valid[scores_t[valid].argsort(descending=True)]
    x1, y1, x2, y2 = boxes_t.unbind(-1)
    areas = (x2 - x1 + offset).clamp(min=0) * (y2 - y1 + offset).clamp(min=0)
    keep = []
    while order.numel():
        i = order[0]
        keep.append(i)
        if max_num > 0 and len(keep) >= max_num:
            break
        rest = order[1:]
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest]) + offset).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest]) + offset).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter).clamp(min=1e-9)
        order = rest[iou <= iou_threshold]
    inds = torch.stack(keep) if keep else torch.zeros(0, dtype=torch.long, device=boxes_t.device)
    dets = torch.cat([boxes_t[inds], scores_t[inds, None]], dim=1)
    if not isinstance(boxes, torch.Tensor):
        return dets.numpy(), inds.numpy()
    return dets, inds


def batched_nms(boxes, scores, idxs, nms_cfg: dict | None, class_agnostic: bool = False):
    """NMS per class (``idxs``), mmcv's ``batched_nms`` contract: ``(dets (K, 5), keep (K,))``."""
    import torch

    if nms_cfg is None:
        scores, inds = scores.sort(descending=True)
        return torch.cat([boxes[inds], scores[:, None]], -1), inds
    cfg = dict(nms_cfg)
    cfg.pop("type", None)
    class_agnostic = cfg.pop("class_agnostic", class_agnostic)
    max_num = cfg.pop("max_num", -1)
    cfg.pop("split_thr", None)
    if class_agnostic or boxes.numel() == 0:
        shifted = boxes
    else:
        offsets = idxs.to(boxes) * (boxes.max() + 1)
        shifted = boxes + offsets[:, None]
    _, keep = nms(shifted, scores, cfg.get("iou_threshold", 0.5), offset=int(cfg.get("offset", 0)),
                  score_threshold=float(cfg.get("score_threshold", 0.0)))
    keep = keep[scores[keep].argsort(descending=True)]
    if max_num > 0:
        keep = keep[:max_num]
    return torch.cat([boxes[keep], scores[keep, None]], -1), keep


def _make_module(fullname: str) -> types.ModuleType:
    mod = types.ModuleType(fullname, __doc__)
    mod.__dict__[STUB_FLAG] = True
    mod.__path__ = []  # a package, so that `mmcv.ops.<sub>` imports resolve through the finder
    mod.nms = nms
    mod.batched_nms = batched_nms

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        cls = _placeholder(name)
        setattr(mod, name, cls)
        return cls

    mod.__getattr__ = __getattr__  # type: ignore[attr-defined]
    return mod


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "mmcv.ops" or fullname.startswith("mmcv.ops."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _make_module(spec.name)

    def exec_module(self, module):
        parent, _, child = module.__name__.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, module)


def is_installed() -> bool:
    mod = sys.modules.get("mmcv.ops")
    return bool(mod is not None and getattr(mod, STUB_FLAG, False))


def install() -> bool:
    """Make ``import mmcv.ops`` work. Returns True if the stand-in was installed, False if the
    real ``mmcv.ops`` imports (then nothing is changed)."""
    if is_installed():
        return True
    try:
        import mmcv.ops  # noqa: F401
        return False
    except ImportError:
        pass
    for name in [m for m in sys.modules if m == "mmcv.ops" or m.startswith("mmcv.ops.")]:
        del sys.modules[name]
    sys.meta_path.insert(0, _StubFinder())
    importlib.import_module("mmcv.ops")  # now the stand-in
    return True
