"""mmengine glue: experiment config → model wrapper, metric, hooks and a :class:`Runner`.

Objects are built in code from the plain config (``configs/*.py``, read with mmengine's
``Config``); only mmengine's own registered types (optimizer, schedulers, hooks, sampler,
collate function, visualizer backends) are named by string. Config keys this module reads:

- ``dataset`` (``"ma52"``, ``"imigue"`` or any name), ``layout`` (a shipped layout name or a
  layout dict, see :meth:`SkeletonLayout.from_dict`), ``modality`` (``"joint"`` | ``"bone"``),
  ``num_classes``, optional ``class_names`` (see :func:`taxonomy_from_cfg`);
- ``data`` (see :func:`mmn.training.datasets.load_split`), ``clip_len``, ``model`` (:class:`MMNConfig`
  overrides), ``augment`` (:data:`mmn.training.augment.AUGMENT_DEFAULTS`);
- ``train``: ``epochs``, ``batch_size``, ``lr``, ``min_lr``, ``warmup_lr``, ``warmup_epochs``,
  ``weight_decay``, ``label_smoothing``, ``grad_clip`` (max norm or None), ``amp`` (GPU only),
  ``drop_last``, ``val_interval``;
- ``loader``: ``num_workers``, ``val_batch_size``; ``checkpoint``: ``interval``, ``max_keep``;
  ``log_interval``, ``seed``, ``threads`` (CPU threads per process, None = all cores / ranks).
"""
from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.runner import Runner

from core.layouts import LAYOUTS, SkeletonLayout
from core.taxonomy import Taxonomy, builtin_taxonomy
from mmn.checkpoint import save_checkpoint
from mmn.model import MMN, MMNConfig, count_parameters
from mmn.preprocess import CLIP_LEN, check_modality, eval_pipeline
from mmn.training.augment import AUGMENT_DEFAULTS, train_pipeline
from mmn.training.datasets import SkeletonDataset, load_split
from mmn.training.metrics import classification_report, scalar_metrics

METRIC_PREFIX = "eval"


# ----------------------------------------------------------------------------- config helpers

def load_config(path: str | os.PathLike, options: Mapping[str, Any] | None = None) -> Config:
    """Read a python config (one ``_base_`` level) and apply ``--cfg-options`` style overrides."""
    cfg = Config.fromfile(str(path))
    if options:
        cfg.merge_from_dict(dict(options))
    for key in ("dataset", "layout", "modality", "num_classes", "data"):
        if key not in cfg:
            raise ValueError(f"{path}: config has no {key!r}")
    check_modality(cfg.modality)
    cfg.augment = {**AUGMENT_DEFAULTS, **dict(cfg.get("augment") or {})}
    return cfg


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


# ----------------------------------------------------------------------------- model wrapper

class MMNClassifier(BaseModel):
    """MMN as an mmengine model. ``forward(inputs (B, 2, T, V, 1), index_t (B, T), label (B,),
    index (B,), mode)``: ``"loss"`` → ``{"loss", "acc"}`` (label-smoothed cross-entropy and
    batch top-1), ``"predict"`` → one ``{"logits" (K,), "label", "index"}`` per clip,
    ``"tensor"`` → logits (B, K)."""

    def __init__(self, model_cfg: MMNConfig, label_smoothing: float = 0.1) -> None:
        super().__init__(data_preprocessor=dict(type="BaseDataPreprocessor"))
        self.mmn = MMN(model_cfg)
        self.label_smoothing = float(label_smoothing)

    def forward(self, inputs: torch.Tensor, index_t: torch.Tensor, label: torch.Tensor | None = None,
                index: torch.Tensor | None = None, mode: str = "tensor") -> Any:
        logits = self.mmn(inputs, index_t)
        if mode == "tensor":
            return logits
        if mode == "loss":
            loss = F.cross_entropy(logits.float(), label, label_smoothing=self.label_smoothing)
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

class ProjectCheckpointHook(Hook):
    """Saves the model in the project's checkpoint format (:func:`mmn.save_checkpoint`, loadable
    by :func:`mmn.load_official`, the classify CLI, the pipeline and the app):
    ``mmn_last.pt`` after every training epoch and ``mmn_best.pt`` whenever the validation
    ``metric`` improves. mmengine's own ``epoch_*.pth`` files remain the resume points."""

    priority = "LOW"

    def __init__(self, meta: Mapping[str, Any], metric: str = "top1") -> None:
        self.meta = dict(meta)
        self.key = f"{METRIC_PREFIX}/{metric}"
        self.best: float = -math.inf
        self.best_epoch: int | None = None

    def _save(self, runner: Runner, name: str, epoch: int, extra: Mapping[str, Any]) -> Path:
        return save_checkpoint(Path(runner.work_dir) / name, unwrap(runner.model).mmn,
                               taxonomy=self.meta["taxonomy"], layout=self.meta["layout"],
                               modality=self.meta["modality"], clip_len=self.meta["clip_len"],
                               provenance={"config": self.meta.get("config"), "epoch": epoch, **extra})

    def before_train(self, runner: Runner) -> None:
        best = Path(runner.work_dir) / "mmn_best.pt"
        if runner._resume and best.is_file():  # carry the best score across a resume
            meta = torch.load(best, map_location="cpu", weights_only=True).get("meta", {})
            meta = meta.get("provenance", meta)  # version 2 keeps the epoch and scores there
            self.best = float(meta.get("val_metrics", {}).get(self.key, -math.inf))
            self.best_epoch = meta.get("epoch")

    def after_train_epoch(self, runner: Runner) -> None:
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
                 resume: bool | str = False, device: str = "cpu", world_size: int = 1) -> Runner:
    """A ready-to-``train()`` Runner for the experiment ``cfg``.

    ``device``: ``"cuda"`` enables AMP (when ``train.amp``) and nccl; ``"cpu"`` uses gloo and
    plain fp32. ``resume``: False, True (latest checkpoint in ``work_dir``) or a path.
    """
    t = training_settings(cfg)
    loader = {"num_workers": 2, "val_batch_size": 64, **dict(cfg.get("loader") or {})}
    layout = layout_from_cfg(cfg)
    seed = int(cfg.get("seed", 1))
    train_set, file_names = build_dataset(cfg, "train", training=True, seed=seed)
    val_set, _ = build_dataset(cfg, "val", training=False)
    taxonomy = taxonomy_from_cfg(cfg, file_names)
    model = MMNClassifier(model_config(cfg, layout), t["label_smoothing"])

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
                clip_len=int(cfg.get("clip_len", CLIP_LEN)), config=Path(cfg.filename).name if cfg.filename else None)
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
    return runner
