"""Evaluate an MMN checkpoint on a dataset split: the paper's metrics, logits, confusion matrix.

    python -m mmn.test CONFIG --weights W.pt [--split test] [--out-dir DIR]
                       [--ensemble OTHER] [--submission] [--cfg-options KEY=VALUE ...]

``W`` is a released or project checkpoint (read with :func:`mmn.load_official`, weights-only
and strict); its modality is the config's (released files do not record one). ``--ensemble
OTHER`` adds the other stream — a checkpoint of the other modality, or the ``logits.npz`` an
earlier ``mmn.test`` run saved — and reports the two-stream result ``0.5 · J + 0.5 · B``.
``--submission`` writes the MA-52 challenge files ``prediction.csv`` (``vid``,
``action_pred_1..5``, ``body_pred_1..5``) and ``prediction.zip`` from the final logits.

Written to the output folder (default ``work_dirs/<config name>/test_<split>``):
``metrics.json`` (percentages), ``per_class_accuracy.csv``, ``confusion_matrix.png`` and
``confusion_matrix.csv``, ``logits.npz`` (``names``, ``labels``, ``logits`` and per stream
``logits_joint`` / ``logits_bone``). Unlabelled splits (label −1) get logits and a submission
but no metrics. Exit status: 0 done, 2 usage, config, data or checkpoint error.
"""
from __future__ import annotations

import argparse
import json
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.config import Config, DictAction
from torch.utils.data import DataLoader

from core.csv_table import csv_text
from core.taxonomy import MA52
from mmn.checkpoint import RELEASED_SOURCE, CheckpointError, load_official
from mmn.inference import resolve_device
from mmn.model import MMN
from mmn.training.datasets import UNLABELLED, SkeletonDataset
from mmn.training.engine import build_dataset, layout_from_cfg, load_config, taxonomy_from_cfg
from mmn.training.metrics import classification_report, ensemble_logits, scalar_metrics

OTHER = {"joint": "bone", "bone": "joint"}
SUMMARY_KEYS = (("top1", "Top-1"), ("top5", "Top-5"), ("body_top1", "body Top-1"),
                ("f1_macro", "F1 macro"), ("f1_micro", "F1 micro"), ("body_f1_macro", "body F1 macro"),
                ("body_f1_micro", "body F1 micro"), ("f1_mean", "F1_mean"))


@torch.inference_mode()
def predict(model: MMN, dataset: SkeletonDataset, device: torch.device, batch_size: int = 64) -> np.ndarray:
    """(N, K) float32 logits of every clip of ``dataset``, in dataset order."""
    model = model.to(device).eval()
    out = []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0):
        out.append(model(batch["inputs"].to(device), batch["index_t"].to(device)).float().cpu().numpy())
    return np.concatenate(out)


def load_stream(path: Path, cfg: Config, modality: str, device: torch.device) -> MMN:
    """A checkpoint for ``modality``, checked against the config's layout and classes."""
    model = load_official(path, modality=None)
    if model.meta.source == RELEASED_SOURCE:  # released files do not record it: the caller's word
        model.meta = replace(model.meta, modality=modality)
    elif model.meta.modality != modality:
        raise CheckpointError(f"{path}: a {model.meta.modality} checkpoint where a {modality} one is needed")
    layout = layout_from_cfg(cfg)
    if model.cfg.num_joints != layout.num_joints or model.cfg.num_classes != int(cfg.num_classes):
        raise CheckpointError(f"{path}: model has {model.cfg.num_joints} joints / {model.cfg.num_classes} "
                              f"classes; the config expects {layout.num_joints} / {cfg.num_classes}")
    return model.to(device)


def stream_logits(path: Path, cfg: Config, split: str, modality: str, device: torch.device,
                  batch_size: int) -> tuple[np.ndarray, SkeletonDataset, list[str] | None]:
    """Logits of one stream on ``split``, its dataset and the data file's class names."""
    cfg_m = cfg.copy()
    cfg_m.modality = modality
    model = load_stream(path, cfg, modality, device)
    dataset, file_names = build_dataset(cfg_m, split, training=False, allow_unlabelled=True)
    return predict(model, dataset, device, batch_size), dataset, file_names


def write_classification_submission(logits: np.ndarray, names: Sequence[str], out_dir: Path, k: int = 5) -> Path:
    """MA-52 challenge files: ``prediction.csv`` with ``vid`` (clip name + ``.mp4``),
    ``action_pred_1..k`` (best first) and ``body_pred_1..k`` (their body levels), zipped
    as ``prediction.zip``. Returns the zip's path."""
    if logits.shape[1] != MA52.num_classes:
        raise ValueError(f"the MA-52 submission needs {MA52.num_classes}-class logits, got {logits.shape[1]} classes")
    a2b = MA52.action_to_body()
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "prediction.csv"
    header = ["vid"] + [f"action_pred_{i + 1}" for i in range(k)] + [f"body_pred_{i + 1}" for i in range(k)]
    rows = [[name if name.endswith(".mp4") else f"{name}.mp4"] + [int(a) for a in row] + [int(a2b[a]) for a in row]
            for name, row in zip(names, top)]
    csv_path.write_text(csv_text(header, rows))
    zip_path = out_dir / "prediction.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(csv_path, arcname="prediction.csv")
    return zip_path


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(class_names)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    size = max(6.0, 0.22 * k + 3)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=90, fontsize=max(4, 10 - k // 10))
    ax.set_yticks(range(k), class_names, fontsize=max(4, 10 - k // 10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_table(rows: dict[str, dict[str, float]]) -> str:
    keys = [(k, label) for k, label in SUMMARY_KEYS if any(k in r for r in rows.values())]
    head = f"{'stream':<8}" + "".join(f"{label:>15}" for _, label in keys)
    lines = [head] + [f"{name:<8}" + "".join(f"{r.get(k, float('nan')):>15.2f}" for k, _ in keys)
                      for name, r in rows.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mmn.test", description=__doc__.split("\n\n")[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--weights", required=True, type=Path, help="checkpoint of the config's modality")
    ap.add_argument("--split", default="test", help="which split of the config's data section (default test)")
    ap.add_argument("--out-dir", type=Path)
    ap.add_argument("--ensemble", type=Path, metavar="OTHER",
                    help="other stream: a checkpoint of the other modality, or its saved logits.npz")
    ap.add_argument("--submission", action="store_true", help="write the MA-52 challenge CSV and zip")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--cfg-options", nargs="+", action=DictAction, default={})
    args = ap.parse_args(argv)

    try:
        cfg = load_config(args.config, args.cfg_options)
        device = resolve_device(args.device)
        modality = cfg.modality
        out_dir = args.out_dir or Path(cfg.get("work_root", "work_dirs")) / args.config.stem / f"test_{args.split}"
        logits, dataset, file_names = stream_logits(args.weights, cfg, args.split, modality, device, args.batch_size)
        streams = {modality: logits}
        if args.ensemble is not None:
            other = OTHER[modality]
            if args.ensemble.suffix == ".npz":
                with np.load(args.ensemble, allow_pickle=False) as z:
                    if list(z["names"]) != dataset.names:
                        raise ValueError(f"{args.ensemble}: its clips are not this split's clips")
                    streams[other] = z[f"logits_{other}"] if f"logits_{other}" in z.files else z["logits"]
            else:
                streams[other], _, _ = stream_logits(args.ensemble, cfg, args.split, other, device, args.batch_size)
    except (CheckpointError, ValueError, KeyError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    final = ensemble_logits(streams["joint"], streams["bone"]) if len(streams) == 2 else logits
    final_name = "2S" if len(streams) == 2 else modality
    names, labels = dataset.names, dataset.labels
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / "logits.npz", names=np.array(names), labels=labels, logits=final,
             **{f"logits_{m}": v for m, v in streams.items()})
    print(f"{args.config.name} · split {args.split} ({len(names)} clips) · weights {args.weights}")

    result: dict[str, Any] = {"config": str(args.config), "split": args.split, "weights": str(args.weights),
                              "ensemble": str(args.ensemble) if args.ensemble else None,
                              "num_clips": len(names), "unit": "percent"}
    if (labels == UNLABELLED).any():
        print("the split is unlabelled: logits saved, no metrics")
    else:
        taxonomy = taxonomy_from_cfg(cfg, file_names)
        a2b, class_names = taxonomy.action_to_body(), list(taxonomy.class_names)
        rows, final_report = {}, None
        candidates = {**streams, **({"2S": final} if len(streams) == 2 else {})}
        for name, lg in candidates.items():
            report = classification_report(lg, labels, a2b)
            rows[name] = {k: 100 * v for k, v in scalar_metrics(report).items() if k != "num_clips"}
            if name == final_name:
                final_report = report
        result["metrics"] = rows
        result["final"] = final_name
        result["per_class_accuracy"] = {n: (None if np.isnan(a) else 100 * float(a))
                                        for n, a in zip(class_names, final_report["per_class_accuracy"])}
        print(format_table(rows))
        cm = final_report["confusion"]
        print(f"per-class accuracy ({final_name}):")
        for i, (n, acc) in enumerate(zip(class_names, final_report["per_class_accuracy"])):
            if cm[i].sum():
                print(f"  {i:>3} {n:<40} {100 * acc:6.2f}%  ({int(cm[i, i])}/{int(cm[i].sum())})")
        per_class = [[i, n, int(cm[i].sum()), int(cm[i, i]), "" if np.isnan(acc) else f"{100 * acc:.2f}"]
                     for i, (n, acc) in enumerate(zip(class_names, final_report["per_class_accuracy"]))]
        (out_dir / "per_class_accuracy.csv").write_text(  # not `rows`: the plot title below reads rows[final_name]
            csv_text(["index", "class", "clips", "correct", "accuracy_percent"], per_class))
        np.savetxt(out_dir / "confusion_matrix.csv", cm, fmt="%d", delimiter=",")
        plot_confusion(cm, class_names, out_dir / "confusion_matrix.png",
                       f"{cfg.dataset} {final_name} · {args.split} · Top-1 {rows[final_name]['top1']:.2f}%")
    if args.submission:
        try:
            result["submission"] = str(write_classification_submission(final, names, out_dir))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"submission: {result['submission']}")
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    print(f"results in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
