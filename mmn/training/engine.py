"""mmengine glue: experiment config → model wrapper, metric, hooks and a :class:`Runner`.

Objects are built in code from the plain config (``configs/*.py``, read with mmengine's
``Config``); only mmengine's own registered types (optimizer, schedulers, hooks, sampler,
collate function, visualizer backends) are named by string. Config keys this module reads:

- ``dataset`` (``"ma52"``, ``"imigue"`` or any name), ``layout`` (a shipped layout name or a
  layout dict, see :meth:`SkeletonLayout.from_dict`), ``modality`` (``"joint"`` | ``"bone"``),
  ``num_classes`` (None: the length of a pyskl data file's ``label_names``, see
  :func:`load_config`), optional ``class_names`` (see :func:`taxonomy_from_cfg`);
- ``data`` (see :func:`mmn.training.datasets.load_split`), ``clip_len``, ``model`` (:class:`MMNConfig`
  overrides), ``augment`` (:data:`mmn.training.augment.AUGMENT_DEFAULTS`);
- ``train``: ``epochs``, ``batch_size``, ``lr``, ``min_lr``, ``warmup_lr``, ``warmup_epochs``,
  ``weight_decay``, ``label_smoothing``, ``grad_clip`` (max norm or None), ``amp`` (GPU only),
  ``drop_last``, ``val_interval``;
- ``loader``: ``num_workers``, ``val_batch_size``; ``checkpoint``: ``interval``, ``max_keep``;
  ``log_interval``, ``seed``, ``threads`` (CPU threads per process, None = all cores / ranks).

Training never goes on from, or saves, a broken state: a non-finite loss stops it before the
optimiser step (:class:`NonFiniteLossError`, naming the iteration and the batch's clips), and
weights with a NaN or infinity are never written, neither as ``mmn_*.pt`` nor as mmengine's
resume checkpoints (:class:`NonFiniteWeightsError`). Both are :class:`TrainingStopped`.
"""
from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dist import get_world_size, is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.runner import Runner, set_random_seed

from core.layouts import LAYOUTS, SkeletonLayout
from core.safe_pickle import load_data_pickle
from core.taxonomy import Taxonomy, builtin_taxonomy
from mmn.checkpoint import CheckpointError, key_problems, load_official, nonfinite_weights, save_checkpoint
from mmn.model import MMN, MMNConfig, count_parameters
from mmn.preprocess import CLIP_LEN, check_modality, eval_pipeline
from mmn.training.augment import AUGMENT_DEFAULTS, train_pipeline
from mmn.training.datasets import SkeletonDataset, load_split
from mmn.training.metrics import classification_report, scalar_metrics

METRIC_PREFIX = "eval"


# ----------------------------------------------------------------------------- config helpers

def load_config(path: str | os.PathLike, options: Mapping[str, Any] | None = None,
                data: str | os.PathLike | None = None) -> Config:
    """Read a python config (one ``_base_`` level) and apply ``--cfg-options`` style overrides.

    ``data``: a pyskl data file for a pyskl config (``data.path``; ``--data`` of ``mmn.train``);
    its ``label_names``, when it has them, then set ``num_classes`` (unless ``options`` set it).
    A config with ``num_classes = None`` takes it from its data file's ``label_names``.
    """
    cfg = Config.fromfile(str(path))
    options = dict(options or {})
    if data is not None:
        if not isinstance(cfg.get("data"), Mapping) or cfg.data.get("format") != "pyskl":
            fmt = cfg.data.get("format") if isinstance(cfg.get("data"), Mapping) else None
            raise ValueError(f"{path}: --data takes a pyskl file, and this config reads the {fmt!r} format "
                             f"(give its data.root with --cfg-options)")
        cfg.data.path = str(data)
    if options:
        cfg.merge_from_dict(options)
    for key in ("dataset", "layout", "modality", "num_classes", "data"):
        if key not in cfg:
            raise ValueError(f"{path}: config has no {key!r}")
    check_modality(cfg.modality)
    if cfg.num_classes is None or (data is not None and "num_classes" not in options):
        names = data_label_names(cfg.data, str(path), required=cfg.num_classes is None)
        if names is not None:
            cfg.num_classes = len(names)
    cfg.augment = {**AUGMENT_DEFAULTS, **dict(cfg.get("augment") or {})}
    return cfg


def data_label_names(data_cfg: Mapping[str, Any], source: str, required: bool = True) -> list[str] | None:
    """The ``label_names`` of a config's pyskl data file (``data.path``), or None where it has
    none and ``required`` is False. Raises ``ValueError`` naming ``source`` (the config) when
    the names are needed (``num_classes = None``) and cannot be read."""
    need = f"{source}: num_classes is not set, so it comes from the data file's label_names"
    if data_cfg.get("format") != "pyskl":
        if required:
            raise ValueError(f"{need}, which only a pyskl file has (this config reads {data_cfg.get('format')!r})")
        return None
    path = data_cfg.get("path") or (data_cfg.get("train") or {}).get("path")
    if not path:
        raise ValueError(f"{source}: no data file: give --data DATA.pkl (or --cfg-options data.path=DATA.pkl)")
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such data file")
    obj = load_data_pickle(path)
    names = obj.get("label_names") if isinstance(obj, Mapping) else None
    if names is None:
        if required:
            raise ValueError(f"{need}, and {path} has none (add label_names, or set --cfg-options num_classes=K)")
        return None
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence) or not names \
            or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{path}: label_names must be a non-empty list of non-empty strings")
    return list(names)


def layout_from_cfg(cfg: Mapping[str, Any]) -> SkeletonLayout:
    spec = cfg["layout"]
    if isinstance(spec, str):
        if spec not in LAYOUTS:
            raise ValueError(f"unknown layout {spec!r}; shipped: {', '.join(LAYOUTS)} (or give a layout dict)")
        return LAYOUTS[spec]
    return SkeletonLayout.from_dict(dict(spec))


def taxonomy_from_cfg(cfg: Mapping[str, Any], file_names: Sequence[str] | None = None) -> Taxonomy:
    """The experiment's taxonomy: the built-in one named by ``dataset`` when its class count
    matches (a config's ``class_names`` renaming its classes), else one made of the config's
    ``class_names``, else of the data file's names, else ``class_i``."""
    k = int(cfg["num_classes"])
    names = cfg.get("class_names")
    builtin = builtin_taxonomy(str(cfg["dataset"]))
    if builtin is not None and builtin.num_classes == k:
        return builtin if names is None else builtin.with_names(names)
    if names is None:
        names = list(file_names) if file_names is not None else [f"class_{i}" for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for num_classes={k}")
    return Taxonomy.from_class_names(names, str(cfg["dataset"]))


def model_config(cfg: Mapping[str, Any], layout: SkeletonLayout) -> MMNConfig:
    overrides = dict(cfg.get("model") or {})
    if "depths" in overrides:
        overrides["depths"] = tuple(overrides["depths"])
    return MMNConfig(num_joints=layout.num_joints, num_classes=int(cfg["num_classes"]), **overrides)


# ----------------------------------------------------------------------------- --init-from

HEAD_PREFIX = "head."  # MMN's classification head: head.weight (K, C), head.bias (K,)
HEAD_KEPT, HEAD_REINITIALISED = "kept", "re-initialised"


@dataclass(frozen=True)
class InitReport:
    """What :func:`init_from_checkpoint` did: the source file (as given) and its sha256, the
    source's taxonomy name and class count, and whether the head was ``"kept"`` or
    ``"re-initialised"`` (``reason`` says why)."""

    file: str
    sha256: str
    source_taxonomy: str
    source_classes: int
    num_classes: int
    head: str
    reason: str
    backbone_tensors: int

    def provenance(self) -> dict[str, Any]:
        """Plain data for the trained checkpoint's provenance (``init_from``)."""
        return {"file": self.file, "sha256": self.sha256, "head": self.head,
                "taxonomy": self.source_taxonomy, "classes": self.source_classes}

    def describe(self) -> str:
        return (f"initialised from {self.file} (sha256 {self.sha256[:12]}…, {self.source_taxonomy}, "
                f"{self.source_classes} classes): {self.backbone_tensors} backbone tensors loaded; "
                f"head {self.head} ({self.reason})")


def init_from_checkpoint(model: MMN, path: str | os.PathLike, taxonomy: Taxonomy | None = None,
                         layout: SkeletonLayout | None = None) -> InitReport:
    """Start ``model`` from a released or project MMN checkpoint (read by :func:`load_official`).

    Every backbone tensor (all but ``head.*``) is copied strictly: a missing, unexpected or
    mis-shaped one is a :class:`CheckpointError` naming the file and the key, as is a different
    joint count or layout (the checkpoint's layout against ``layout``). The head is kept when
    the checkpoint's class list equals ``taxonomy``'s (without ``taxonomy``: when the class
    counts are equal), else re-initialised (``nn.Linear``'s default initialisation).
    """
    src = load_official(path)
    meta = src.meta
    if meta.model.num_joints != model.cfg.num_joints:
        raise CheckpointError(f"{path}: a {meta.layout.name} checkpoint ({meta.model.num_joints} joints) cannot start "
                              f"a model of {model.cfg.num_joints} joints"
                              f"{f' (layout {layout.name})' if layout is not None else ''}")
    if layout is not None and meta.layout.to_dict() != layout.to_dict():
        raise CheckpointError(f"{path}: its layout {meta.layout.name!r} differs from the config's {layout.name!r} "
                              f"(same joint count, other joints or order)")
    src_state, own = src.state_dict(), model.state_dict()
    problems = key_problems(src_state, own, ignore_prefix=HEAD_PREFIX, what="backbone ")
    if problems:
        raise CheckpointError(f"{path}: cannot initialise the model's backbone from it ({'; '.join(problems)})")

    k_src, k_own = meta.model.num_classes, model.cfg.num_classes
    if taxonomy is not None:
        keep = tuple(meta.taxonomy.class_names) == tuple(taxonomy.class_names)
        reason = (f"same {k_own} classes" if keep else
                  f"{k_src} {meta.taxonomy.name} classes → {k_own} {taxonomy.name} classes" if k_src != k_own else
                  f"{meta.taxonomy.name} and {taxonomy.name} name their {k_own} classes differently")
    else:
        keep = k_src == k_own
        reason = f"same class count {k_own}" if keep else f"{k_src} → {k_own} classes"
    state = {k: v for k, v in src_state.items() if not k.startswith(HEAD_PREFIX)}
    if keep:
        state.update({k: v for k, v in src_state.items() if k.startswith(HEAD_PREFIX)})
    else:
        model.head.reset_parameters()
        state.update({k: v for k, v in model.state_dict().items() if k.startswith(HEAD_PREFIX)})
    model.load_state_dict(state, strict=True)
    return InitReport(file=str(path), sha256=str(meta.sha256), source_taxonomy=meta.taxonomy.name,
                      source_classes=k_src, num_classes=k_own, head=HEAD_KEPT if keep else HEAD_REINITIALISED,
                      reason=reason, backbone_tensors=sum(not k.startswith(HEAD_PREFIX) for k in own))


def build_dataset(cfg: Mapping[str, Any], which: str, training: bool, allow_unlabelled: bool = False,
                  seed: int | None = None) -> tuple[SkeletonDataset, list[str] | None]:
    """Split ``which`` with the training pipeline (augmented) or the test-time one."""
    layout = layout_from_cfg(cfg)
    clips, names = load_split(cfg["data"], which, layout.num_joints, int(cfg["num_classes"]),
                              allow_unlabelled=allow_unlabelled)
    clip_len = int(cfg.get("clip_len", CLIP_LEN))
    pipeline = (train_pipeline(layout, cfg["modality"], clip_len, cfg.get("augment"), seed) if training
                else eval_pipeline(layout, cfg["modality"], clip_len))
    return SkeletonDataset(clips, pipeline, seed=seed if training else None), names


# ----------------------------------------------------------------------------- stopping on broken states

class TrainingStopped(RuntimeError):
    """Training stopped because going on would train or save garbage; the message says why."""


class NonFiniteLossError(TrainingStopped):
    """The loss of a training batch is NaN or infinite (raised before the optimiser step)."""


class NonFiniteWeightsError(TrainingStopped):
    """The model's weights hold NaN or infinite values: nothing is saved from them."""


def _train_position() -> str:
    """``epoch E, iteration I`` (1-based) from mmengine's message hub, where it has them."""
    try:
        hub = MessageHub.get_current_instance()
        epoch, it = hub.get_info("epoch"), hub.get_info("iter")
    except Exception:  # noqa: BLE001 — outside a runner: no position to report
        return "a training iteration"
    parts = ([f"epoch {int(epoch) + 1}"] if epoch is not None else []) + \
        ([f"iteration {int(it) + 1} of the run"] if it is not None else [])
    return ", ".join(parts) or "a training iteration"


def check_loss_finite(loss: torch.Tensor, index: torch.Tensor | None = None,
                      clip_names: Sequence[str] | None = None, inputs: torch.Tensor | None = None) -> None:
    """Raise :class:`NonFiniteLossError` when ``loss`` (a scalar) is NaN or infinite on this or,
    under DDP, any other process (all processes then stop together instead of one waiting for
    the others). ``index`` (B,): the batch's dataset indices; ``clip_names`` turns them into
    names; ``inputs``: the batch, to tell bad data from a diverged training in the message."""
    finite = torch.isfinite(loss.detach()).all()
    everywhere = finite
    if torch.distributed.is_available() and torch.distributed.is_initialized() and get_world_size() > 1:
        flag = finite.to(torch.int32)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        everywhere = flag.bool()
    if bool(everywhere):
        return
    where = _train_position()
    if bool(finite):
        raise NonFiniteLossError(f"training stopped at {where}: the loss of another process is NaN or infinite")
    batch = ""
    if index is not None:
        idx = [int(i) for i in index.detach().cpu().reshape(-1)]
        shown = [repr(clip_names[i]) if clip_names is not None and 0 <= i < len(clip_names) else f"#{i}"
                 for i in idx[:5]]
        batch = f" on a batch of {len(idx)} clip(s): {', '.join(shown)}{', …' if len(idx) > 5 else ''}"
    if inputs is not None and not bool(torch.isfinite(inputs.detach()).all()):
        cause = "the batch's preprocessed clips hold NaN/infinite values: look at those clips' coordinates"
    else:
        cause = "the batch's inputs are finite, so the training diverged: lower train.lr or set train.grad_clip"
    raise NonFiniteLossError(
        f"training stopped at {where}: the loss is {float(loss.detach().float())}{batch}; {cause}. No "
        f"optimiser step was taken with it, and no checkpoint was written from it")


# ----------------------------------------------------------------------------- model wrapper

class MMNClassifier(BaseModel):
    """MMN as an mmengine model. ``forward(inputs (B, 2, T, V, 1), index_t (B, T), label (B,),
    index (B,), mode)``: ``"loss"`` → ``{"loss", "acc"}`` (label-smoothed cross-entropy and
    batch top-1; a non-finite loss raises :class:`NonFiniteLossError` before any backward
    pass), ``"predict"`` → one ``{"logits" (K,), "label", "index"}`` per clip, ``"tensor"`` →
    logits (B, K). ``clip_names``: the training set's clip names, for that error."""

    def __init__(self, model_cfg: MMNConfig, label_smoothing: float = 0.1,
                 clip_names: Sequence[str] | None = None) -> None:
        super().__init__(data_preprocessor=dict(type="BaseDataPreprocessor"))
        self.mmn = MMN(model_cfg)
        self.label_smoothing = float(label_smoothing)
        self.clip_names = list(clip_names) if clip_names is not None else None

    def forward(self, inputs: torch.Tensor, index_t: torch.Tensor, label: torch.Tensor | None = None,
                index: torch.Tensor | None = None, mode: str = "tensor") -> Any:
        logits = self.mmn(inputs, index_t)
        if mode == "tensor":
            return logits
        if mode == "loss":
            loss = F.cross_entropy(logits.float(), label, label_smoothing=self.label_smoothing)
            check_loss_finite(loss, index, self.clip_names, inputs)
            acc = (logits.detach().argmax(dim=1) == label).float().mean()
            return {"loss": loss, "acc": acc}
        if mode == "predict":
            logits = logits.detach().float().cpu()
            idx = index.cpu() if index is not None else torch.arange(len(logits))
            lab = label.cpu() if label is not None else torch.full((len(logits),), -1)
            return [{"logits": l, "label": int(y), "index": int(i)} for l, y, i in zip(logits, lab, idx)]
        raise ValueError(f"unknown mode {mode!r}")


def unwrap(model: torch.nn.Module) -> MMNClassifier:
    return model.module if is_model_wrapper(model) else model


# ----------------------------------------------------------------------------- metric

class ClassificationMetric(BaseMetric):
    """The paper's metrics (docs/mmn-computation.md §9) on a validation pass, in percent:
    ``top1``, ``top5``, ``f1_macro``, ``f1_micro`` and, for MA-52, ``body_top1``,
    ``body_f1_macro``, ``body_f1_micro``, ``f1_mean``. Results from all ranks are gathered
    and put back in dataset order before scoring."""

    default_prefix = METRIC_PREFIX

    def __init__(self, action_to_body: np.ndarray | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.action_to_body = action_to_body

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            self.results.append((int(s["index"]), np.asarray(s["logits"], dtype=np.float32), int(s["label"])))

    def compute_metrics(self, results: list) -> dict[str, float]:
        results = sorted(results, key=lambda r: r[0])
        logits = np.stack([r[1] for r in results])
        labels = np.array([r[2] for r in results], dtype=np.int64)
        report = scalar_metrics(classification_report(logits, labels, self.action_to_body))
        report.pop("num_clips")
        return {k: 100.0 * v for k, v in report.items()}


# ----------------------------------------------------------------------------- hooks

def check_weights_finite(state: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise :class:`NonFiniteWeightsError` when ``state`` holds a NaN or infinity; ``what``
    names what would have been saved."""
    problem = nonfinite_weights(state)
    if problem:
        raise NonFiniteWeightsError(f"training stopped: the model's weights hold {problem}; refused to save "
                                    f"{what} (the training diverged: lower train.lr or set train.grad_clip)")


class ProjectCheckpointHook(Hook):
    """Saves the model in the project's checkpoint format (:func:`mmn.save_checkpoint`, loadable
    by :func:`mmn.load_official`, the classify CLI, the pipeline and the app):
    ``mmn_last.pt`` after every training epoch and ``mmn_best.pt`` whenever the validation
    ``metric`` improves. mmengine's own ``epoch_*.pth`` files remain the resume points.

    After every training epoch, before anything is saved, every process checks the weights:
    a NaN or infinity raises :class:`NonFiniteWeightsError` (all processes hold the same
    weights, so all stop), and neither these files nor mmengine's are written."""

    priority = "LOW"

    def __init__(self, meta: Mapping[str, Any], metric: str = "top1") -> None:
        self.meta = dict(meta)
        self.key = f"{METRIC_PREFIX}/{metric}"
        self.best: float = -math.inf
        self.best_epoch: int | None = None

    def _save(self, runner: Runner, name: str, epoch: int, extra: Mapping[str, Any]) -> Path:
        check_weights_finite(unwrap(runner.model).mmn.state_dict(), f"{name} (epoch {epoch})")
        init = {"init_from": self.meta["init_from"]} if self.meta.get("init_from") else {}
        return save_checkpoint(Path(runner.work_dir) / name, unwrap(runner.model).mmn,
                               taxonomy=self.meta["taxonomy"], layout=self.meta["layout"],
                               modality=self.meta["modality"], clip_len=self.meta["clip_len"],
                               provenance={"config": self.meta.get("config"), "epoch": epoch, **init, **extra})

    def before_train(self, runner: Runner) -> None:
        best = Path(runner.work_dir) / "mmn_best.pt"
        if runner._resume and best.is_file():  # carry the best score across a resume
            meta = torch.load(best, map_location="cpu", weights_only=True).get("meta", {})
            meta = meta.get("provenance", meta)  # version 2 keeps the epoch and scores there
            self.best = float(meta.get("val_metrics", {}).get(self.key, -math.inf))
            self.best_epoch = meta.get("epoch")
        last = Path(runner.work_dir) / "mmn_last.pt"
        if runner._resume and last.is_file() and not self.meta.get("init_from"):  # and where the run started
            meta = torch.load(last, map_location="cpu", weights_only=True).get("meta", {})
            self.meta["init_from"] = (meta.get("provenance") or {}).get("init_from")

    def after_train_epoch(self, runner: Runner) -> None:
        # on every rank, before mmengine's CheckpointHook (priority VERY_LOW) saves epoch_*.pth
        check_weights_finite(unwrap(runner.model).mmn.state_dict(), f"the checkpoints of epoch {runner.epoch + 1}")
        if is_main_process():
            self._save(runner, "mmn_last.pt", runner.epoch + 1, {})  # the loop counts up after this hook

    def after_val_epoch(self, runner: Runner, metrics: dict[str, float] | None = None) -> None:
        if not metrics or self.key not in metrics:
            return
        value = float(metrics[self.key])
        if value > self.best:
            self.best, self.best_epoch = value, runner.epoch
            if is_main_process():
                path = self._save(runner, "mmn_best.pt", runner.epoch,
                                  {"val_metrics": {k: float(v) for k, v in metrics.items()}})
                runner.logger.info(f"new best {self.key} = {value:.2f} at epoch {runner.epoch}: saved {path}")

    def after_train(self, runner: Runner) -> None:
        if self.best_epoch is not None:
            runner.logger.info(f"best {self.key} = {self.best:.2f} at epoch {self.best_epoch} "
                               f"({Path(runner.work_dir) / 'mmn_best.pt'}); last weights in mmn_last.pt")


# ----------------------------------------------------------------------------- resume safety

_HB = "__history_buffer__"


def _plain(obj: Any) -> Any:
    """numpy scalars → Python numbers, arrays → lists, recursively (dicts, lists, tuples)."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


class PlainResumeStateHook(Hook):
    """Keep mmengine's resume checkpoints loadable with ``torch.load(weights_only=True)``.

    mmengine stores the message hub's ``HistoryBuffer`` objects (numpy arrays inside, and a
    class attribute that pickles through ``builtins.getattr``) and numpy scalars. Before a
    checkpoint is written they become plain dicts, lists and numbers; after one is read
    the buffers are rebuilt. Nothing is allow-listed, so ``weights_only`` keeps its meaning.
    """

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        from mmengine.logging import HistoryBuffer
        if isinstance(checkpoint.get("state_dict"), Mapping):  # never a resume point with broken weights
            check_weights_finite(checkpoint["state_dict"], "mmengine's resume checkpoint")
        hub = checkpoint.get("message_hub")
        if isinstance(hub, Mapping):
            scalars = {k: ({_HB: True, "log": v._log_history.tolist(), "count": v._count_history.tolist(),
                            "max_length": int(v.max_length)} if isinstance(v, HistoryBuffer) else v)
                       for k, v in hub.get("log_scalars", {}).items()}
            checkpoint["message_hub"] = _plain({**hub, "log_scalars": scalars})
        checkpoint["meta"] = _plain(checkpoint.get("meta", {}))

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        from mmengine.logging import HistoryBuffer
        hub = checkpoint.get("message_hub")
        if isinstance(hub, Mapping) and isinstance(hub.get("log_scalars"), Mapping):
            hub["log_scalars"] = {
                k: (HistoryBuffer(v["log"], v["count"], v["max_length"])
                    if isinstance(v, Mapping) and v.get(_HB) else v)
                for k, v in hub["log_scalars"].items()}


def resume_checkpoint(work_dir: str | os.PathLike, resume: bool | str) -> str | None:
    """The checkpoint to resume from (latest in ``work_dir`` for ``True``), after checking that
    it loads with ``torch.load(weights_only=True)`` — whatever torch's default — so mmengine's
    own load never unpickles code. Raises ``ValueError`` if there is none or it is unsafe."""
    if not resume:
        return None
    if resume is True:
        from mmengine.runner import find_latest_checkpoint
        path = find_latest_checkpoint(str(work_dir))
        if path is None:
            raise ValueError(f"--resume: no checkpoint to resume from in {work_dir}")
    else:
        path = str(resume)
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — any failure means we must not hand it to mmengine
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: refused to resume — not loadable with weights_only=True ({first})") from None
    return path


# ----------------------------------------------------------------------------- runner

def training_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    defaults = dict(epochs=120, batch_size=64, lr=1e-3, min_lr=1e-5, warmup_lr=1e-7, warmup_epochs=20,
                    weight_decay=0.1, label_smoothing=0.1, grad_clip=None, amp=True, drop_last=True,
                    val_interval=1)
    t = {**defaults, **dict(cfg.get("train") or {})}
    unknown = set(t) - set(defaults)
    if unknown:
        raise ValueError(f"unknown train option(s) {sorted(unknown)}; known: {sorted(defaults)}")
    return t


def param_schedulers(t: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Linear warm-up from ``warmup_lr`` over ``warmup_epochs``, then cosine to ``min_lr``;
    both stepped per iteration."""
    epochs, warm = int(t["epochs"]), int(t["warmup_epochs"])
    scheds: list[dict[str, Any]] = []
    if warm > 0:
        scheds.append(dict(type="LinearLR", start_factor=float(t["warmup_lr"]) / float(t["lr"]), end_factor=1.0,
                           by_epoch=True, begin=0, end=warm, convert_to_iter_based=True))
    if epochs > warm:
        scheds.append(dict(type="CosineAnnealingLR", T_max=epochs - warm, eta_min=float(t["min_lr"]),
                           by_epoch=True, begin=warm, end=epochs, convert_to_iter_based=True))
    return scheds


def build_runner(cfg: Config, work_dir: str | os.PathLike, *, launcher: str = "none",
                 resume: bool | str = False, device: str = "cpu", world_size: int = 1,
                 init_from: str | os.PathLike | None = None) -> Runner:
    """A ready-to-``train()`` Runner for the experiment ``cfg``.

    ``device``: ``"cuda"`` enables AMP (when ``train.amp``) and nccl; ``"cpu"`` uses gloo and
    plain fp32. ``resume``: False, True (latest checkpoint in ``work_dir``) or a path.
    ``init_from``: an MMN checkpoint to start from (:func:`init_from_checkpoint`: backbone
    loaded strictly, head kept or re-initialised); recorded in the saved checkpoints'
    provenance as ``init_from``. Not with ``resume``, whose checkpoint holds the weights.
    """
    if init_from is not None and resume:
        raise ValueError("--init-from starts a new run and --resume continues one from its own weights: give one")
    t = training_settings(cfg)
    loader = {"num_workers": 2, "val_batch_size": 64, **dict(cfg.get("loader") or {})}
    layout = layout_from_cfg(cfg)
    seed = int(cfg.get("seed", 1))
    train_set, file_names = build_dataset(cfg, "train", training=True, seed=seed)
    val_set, _ = build_dataset(cfg, "val", training=False)
    taxonomy = taxonomy_from_cfg(cfg, file_names)
    # The Runner seeds only when it is constructed, after the model below has drawn its initial
    # weights: seed here too, or `seed` fixes the data order but not the starting point.
    set_random_seed(seed)
    model = MMNClassifier(model_config(cfg, layout), t["label_smoothing"], clip_names=train_set.names)
    init_report = None if init_from is None else init_from_checkpoint(model.mmn, init_from, taxonomy, layout)

    batch = int(t["batch_size"])  # per process, as in mmengine: the effective batch is batch × processes
    per_rank = math.ceil(len(train_set) / world_size)  # DefaultSampler pads to equal shares
    drop_last = bool(t["drop_last"]) and per_rank >= batch
    iters_per_epoch = max(1, per_rank // batch if drop_last else math.ceil(per_rank / batch))
    workers = int(loader["num_workers"])

    def dataloader(ds: SkeletonDataset, bs: int, shuffle: bool, last: bool) -> dict[str, Any]:
        return dict(dataset=ds, batch_size=bs, num_workers=workers, persistent_workers=workers > 0,
                    sampler=dict(type="DefaultSampler", shuffle=shuffle),
                    collate_fn=dict(type="default_collate"), drop_last=last)

    amp = bool(t["amp"]) and device == "cuda"
    optim_wrapper: dict[str, Any] = dict(type="AmpOptimWrapper" if amp else "OptimWrapper",
                                         optimizer=dict(type="AdamW", lr=float(t["lr"]),
                                                        weight_decay=float(t["weight_decay"])))
    if t["grad_clip"]:
        optim_wrapper["clip_grad"] = dict(max_norm=float(t["grad_clip"]))
    ckpt = {"interval": 1, "max_keep": 2, **dict(cfg.get("checkpoint") or {})}
    meta = dict(taxonomy=taxonomy, layout=layout, modality=cfg["modality"],
                clip_len=int(cfg.get("clip_len", CLIP_LEN)), config=Path(cfg.filename).name if cfg.filename else None,
                init_from=None if init_report is None else init_report.provenance())
    runner_cfg = cfg.copy()
    if launcher != "none" and device == "cpu":
        # mmengine defaults to device_ids=[LOCAL_RANK], which DDP rejects for CPU modules
        runner_cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None,
                                            broadcast_buffers=False)

    resume_from = resume_checkpoint(work_dir, resume)
    runner = Runner(
        model=model,
        work_dir=str(work_dir),
        train_dataloader=dataloader(train_set, batch, True, drop_last),
        val_dataloader=dataloader(val_set, int(loader["val_batch_size"]), False, False),
        train_cfg=dict(by_epoch=True, max_epochs=int(t["epochs"]), val_interval=int(t["val_interval"])),
        val_cfg=dict(fp16=amp),
        val_evaluator=[ClassificationMetric(taxonomy.action_to_body())],
        optim_wrapper=optim_wrapper,
        param_scheduler=param_schedulers(t),
        default_hooks=dict(
            logger=dict(type="LoggerHook", interval=max(1, min(int(cfg.get("log_interval", 50)), iters_per_epoch))),
            checkpoint=dict(type="CheckpointHook", interval=int(ckpt["interval"]),
                            max_keep_ckpts=int(ckpt["max_keep"]), save_last=True)),
        custom_hooks=[ProjectCheckpointHook(meta), PlainResumeStateHook()],
        visualizer=dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend"),
                                                         dict(type="TensorboardVisBackend")]),
        randomness=dict(seed=seed),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend="nccl" if device == "cuda" else "gloo")),
        launcher=launcher,
        resume=resume_from is not None,
        load_from=resume_from,
        cfg=runner_cfg,
        # unique per run, so several runs in one process never share mmengine's named singletons
        experiment_name=f"{Path(cfg.filename or 'mmn').stem}_{uuid.uuid4().hex[:6]}",
    )
    runner.logger.info(
        f"MMN {cfg['dataset']} {cfg['modality']}: layout {layout.name} ({layout.num_joints} joints), "
        f"{taxonomy.num_classes} classes, {count_parameters(model.mmn):,} parameters; train {len(train_set)} clips "
        f"({iters_per_epoch} iterations/epoch{' per rank' if world_size > 1 else ''}), val {len(val_set)} clips; "
        f"device {device}{' AMP' if amp else ''}, {world_size} process(es), "
        f"{torch.get_num_threads()} CPU thread(s) each")
    runner.logger.info(f"training pipeline: {train_set.pipeline!r}")
    if init_report is not None:
        runner.logger.info(f"--init-from: {init_report.describe()}")
    return runner
