"""One agreement run: predictions against gold, to ``detections.csv``, ``agreement.json`` and a picture.

:func:`prepare` reads the inputs (:mod:`pipelines.evaluation.sources`), names the classes
(:func:`resolve_taxonomy`), matches gold values to them (``"code name"``, code or name, any case;
values that match nothing are counted in ``unmatched``, never dropped silently) and keeps the
predicted videos that have gold (the others are listed in ``skipped``). :func:`run_agreement`
writes the predictions as an MMA-52 submission, reads that file back, and scores exactly those
rows (:func:`agreement_document`, :func:`draw_agreement`). docs/agreement.md has the rules.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_path, atomic_write_text
from core.taxonomy import MA52, Taxonomy, builtin_taxonomy, label_problem, shown_label
from pipelines.evaluation.detection_ap import TIOU_THRESHOLDS, ScoredSegment, detection_ap
from pipelines.evaluation.frame_agreement import cohen_kappa, frame_labels, precision_recall_f1, presence
from pipelines.evaluation.sources import (
    Annotations,
    Predictions,
    ValueSpan,
    VideoFacts,
    is_prediction_file,
    read_annotations,
    read_predictions,
)
from pipelines.formats.spans import AnnotationError
from pipelines.formats.submission import read_submission, write_detection_submission

__all__ = ["FRAME_RATE", "MAX_GRID_CELLS", "AgreementInputs", "agreement_document", "class_lookup", "draw_agreement",
           "prepare", "resolve_taxonomy", "run_agreement"]

FRAME_RATE = 30.0  # frames per second where no labels document gives the video's (MA-52 is 30 fps)
MAX_GRID_CELLS = 250_000_000  # frames of all videos × (classes present + 8): about 1 GB of frame labels
_DIGITS = 6
_MAX_NAMED_SPANS = 200  # a timeline row with more spans than this draws them without their names


@dataclass(frozen=True)
class AgreementInputs:
    """Everything scored: class-indexed ``gold`` and ``predictions`` (videos with gold only),
    the ``taxonomy``, per video ``(fps, duration_s)``, ``unmatched`` values per side, what was
    ``skipped``, and whether the predictions are a coder's annotations (``annotated``)."""

    gold: tuple[ScoredSegment, ...]
    predictions: tuple[ScoredSegment, ...]
    taxonomy: Taxonomy
    videos: Mapping[str, tuple[float, float]]
    unmatched: Mapping[str, Mapping[str, int]]
    skipped: Mapping[str, Any]
    annotated: bool


def resolve_taxonomy(name: str | None, preds: Predictions | None, values: Sequence[str]) -> Taxonomy:
    """``--taxonomy`` (``ma52``, ``imigue`` or a checkpoint file, any case), else the
    predictions' own (a built-in named by the labels documents; MA-52 for a submission), else —
    two coders' files — one class per distinct value, in sorted order."""
    if name is not None:
        builtin = builtin_taxonomy(name.lower())
        if builtin is not None:
            return builtin
        if not Path(name).is_file():
            raise AnnotationError(f"--taxonomy {name!r}: neither ma52, imigue nor a checkpoint file")
        from mmn.checkpoint import CheckpointError, load_official
        try:
            return load_official(name).meta.taxonomy
        except CheckpointError as e:
            raise AnnotationError(f"--taxonomy {name}: {e}") from None
    if preds is not None:
        builtin = builtin_taxonomy(preds.taxonomy or "")
        if builtin is None:
            raise AnnotationError(f"the predictions' taxonomy {preds.taxonomy!r} is not built in; name its classes "
                                  f"with --taxonomy CHECKPOINT (the checkpoint that labelled the videos)")
        return builtin
    return Taxonomy.from_class_names(sorted(set(values)), name="values")


def class_lookup(taxonomy: Taxonomy) -> dict[str, int]:
    """Lower-cased ``"code name"``, code and name of every class → its index."""
    out: dict[str, int] = {}
    for c in taxonomy.classes:
        for key in (c.label, c.code, c.name):
            if key:
                out.setdefault(key.strip().lower(), c.index)
    return out


def _indexed(spans: Sequence[ValueSpan], lookup: Mapping[str, int], unmatched: Counter) -> list[ScoredSegment]:
    out = []
    for s in spans:
        idx = lookup.get(s.value.strip().lower())
        if idx is None:
            unmatched[s.value] += 1
        else:
            out.append(ScoredSegment(s.video, s.start_s, s.end_s, idx, 1.0))
    return out


def _read_sides(pred_paths: Sequence[str | os.PathLike], gold_paths: Sequence[str | os.PathLike],
                tier: str | None) -> tuple[Annotations, Predictions | None, Annotations | None]:
    gold = read_annotations(gold_paths, tier)
    kinds = {is_prediction_file(Path(p)) for p in pred_paths}
    if kinds == {True, False}:
        raise AnnotationError("the predictions mix model outputs (labels JSON, folders, submission CSVs) with "
                              "annotation files; score one kind per run")
    if kinds == {True}:
        return gold, read_predictions(pred_paths), None
    return gold, None, read_annotations(pred_paths, tier)


def _check_values(spans: Sequence[ValueSpan]) -> None:
    """Two coders' values become class names: refuse one a taxonomy refuses (control characters,
    line breaks, over-long …), naming the file and annotation it came from."""
    for s in spans:
        problem = label_problem(s.value)
        if problem:
            raise AnnotationError(f"{s.source}: the value {shown_label(s.value)} cannot be a class: {problem}")


def _check_classes(preds: Predictions, tax: Taxonomy) -> None:
    """Every predicted class index in ``0 … K-1`` of the taxonomy, else the file that has it."""
    for s in preds.detections:
        if not 0 <= s.label < tax.num_classes:
            raise AnnotationError(f"{preds.videos[s.video].file}: class {s.label} of video {s.video!r} is outside "
                                  f"0..{tax.num_classes - 1} of taxonomy {tax.name!r}")


def _check_within(spans: Sequence[ValueSpan], videos: Mapping[str, VideoFacts]) -> None:
    """Refuse a gold span that starts after its video ends (beyond a frame), where the
    predictions know the video's duration: gold for another video, or in other time units."""
    for s in spans:
        facts = videos.get(s.video)
        if facts is not None and facts.duration_s is not None and facts.fps:
            if s.start_s >= facts.duration_s + 1.0 / facts.fps:
                raise AnnotationError(f"{s.source}: span {s.start_s:g}-{s.end_s:g} s of video {s.video!r} starts "
                                      f"after the video ends ({facts.duration_s:g} s in {facts.file}): is this gold "
                                      f"of another video?")


def _check_grid(videos: Mapping[str, tuple[float, float]], classes: int, gold: Annotations,
                pred_videos: Mapping[str, VideoFacts]) -> None:
    """Refuse a frame grid too large to hold (a time far past any video's end: 10^7 s of gold
    asked for 19 GB), naming the longest video and its files, before anything is allocated."""
    frames = {v: int(np.ceil(round(d * fps, 2))) for v, (fps, d) in videos.items()}
    if sum(frames.values()) * (8 + classes) <= MAX_GRID_CELLS:
        return
    v = max(frames, key=frames.__getitem__)
    fps, duration = videos[v]
    raise AnnotationError(f"{gold.videos[v].file}, {pred_videos[v].file}: video {v!r} runs to {duration:g} s "
                          f"({frames[v]} frames at {fps:g} fps); the frame grid of all videos ({sum(frames.values())} "
                          f"frames, {classes} classes) is over the limit of {MAX_GRID_CELLS:.0e} cells: a time far "
                          f"past the video's end?")


def prepare(pred_paths: Sequence[str | os.PathLike], gold_paths: Sequence[str | os.PathLike], *,
            tier: str | None = None, taxonomy: str | None = None, fps: float = FRAME_RATE) -> AgreementInputs:
    """Read, name and match the inputs (module doc). Raises ``AnnotationError`` naming the file
    for bad input, and for a gold video the predictions lack."""
    gold, preds, coder = _read_sides(pred_paths, gold_paths, tier)
    values = [s.value for s in gold.spans] + ([s.value for s in coder.spans] if coder else [])
    if taxonomy is None and preds is None:
        _check_values(gold.spans + coder.spans)
    tax = resolve_taxonomy(taxonomy, preds, values)
    if preds is not None and preds.num_classes not in (None, tax.num_classes):
        raise AnnotationError(f"the predictions have {preds.num_classes} classes, taxonomy {tax.name!r} "
                              f"{tax.num_classes}")
    if preds is not None:
        _check_classes(preds, tax)
    lookup = class_lookup(tax)
    unmatched: dict[str, Counter] = {"gold": Counter(), "predictions": Counter()}
    gold_segs = _indexed(gold.spans, lookup, unmatched["gold"])
    pred_videos = preds.videos if preds is not None else coder.videos
    for video, facts in gold.videos.items():
        if video not in pred_videos:
            shown = ", ".join(map(shown_label, sorted(pred_videos)[:8])) + (" …" if len(pred_videos) > 8 else "")
            raise AnnotationError(f"{facts.file}: video {video!r} has gold but no prediction (predicted videos: "
                                  f"{shown or 'none'})")
    _check_within(gold.spans, pred_videos)
    pred_segs = preds.detections if preds is not None else _indexed(coder.spans, lookup, unmatched["predictions"])
    kept = [s for s in pred_segs if s.video in gold.videos]
    end: dict[str, float] = {}
    for s in gold_segs + kept:
        end[s.video] = max(end.get(s.video, 0.0), s.end_s)
    videos = {v: (pred_videos[v].fps or fps, max(pred_videos[v].duration_s or 0.0, end.get(v, 0.0)))
              for v in gold.videos}
    _check_grid(videos, len({s.label for s in gold_segs + kept}), gold, pred_videos)
    skipped = {"videos_without_gold": sorted(set(pred_videos) - set(gold.videos)),
               "point_events": gold.points + (coder.points if coder else 0)}
    return AgreementInputs(tuple(gold_segs), tuple(kept), tax, videos,
                           {k: dict(sorted(c.items())) for k, c in unmatched.items()}, skipped, coder is not None)


def _r(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), _DIGITS)


def _frames_section(inp: AgreementInputs, classes: Sequence[int]) -> dict[str, Any]:
    column = {c: j for j, c in enumerate(classes)}  # presence is kept for the classes present only
    by_video: dict[tuple[str, bool], list[ScoredSegment]] = {}
    for is_gold, segs in ((True, inp.gold), (False, inp.predictions)):
        for s in segs:
            by_video.setdefault((s.video, is_gold), []).append(s)
    gl, pl, gp, pp = [], [], [], []
    for video, (fps, duration) in inp.videos.items():
        n = int(np.ceil(round(duration * fps, 2)))  # 1.5667 s at 30 fps: 47 frames, not 48
        g, p = by_video.get((video, True), []), by_video.get((video, False), [])
        gl.append(frame_labels(g, n, fps, by_score=False))
        pl.append(frame_labels(p, n, fps, by_score=not inp.annotated))
        gp.append(presence([ScoredSegment(s.video, s.start_s, s.end_s, column[s.label]) for s in g], n, fps,
                           len(classes)))
        pp.append(presence([ScoredSegment(s.video, s.start_s, s.end_s, column[s.label]) for s in p], n, fps,
                           len(classes)))
    overall = cohen_kappa(np.concatenate(gl), np.concatenate(pl))
    g_all, p_all = np.concatenate(gp), np.concatenate(pp)
    per_class = {str(c): {"name": inp.taxonomy[c].label,
                          "kappa": _r(cohen_kappa(g_all[:, column[c]], p_all[:, column[c]]).kappa)} for c in classes}
    return {"kappa": _r(overall.kappa), "percent_agreement": _r(overall.percent), "per_class": per_class}


def agreement_document(inp: AgreementInputs) -> dict[str, Any]:
    """``agreement.json`` (docs/agreement.md lists its fields)."""
    tax, k = inp.taxonomy, inp.taxonomy.num_classes
    ap = detection_ap(inp.gold, inp.predictions, k)
    gold_classes = sorted({s.label for s in inp.gold})
    classes = sorted(set(gold_classes) | {s.label for s in inp.predictions})
    detection: dict[str, Any] = {
        "tiou": [round(float(t), 2) for t in TIOU_THRESHOLDS],
        "per_class": {str(c): {"name": tax[c].label, "ap": [_r(v) for v in ap[:, c]]} for c in classes},
        "mAP": _r(float(ap[:, gold_classes].mean())) if gold_classes else None,
    }
    if tax.name == MA52.name and k == MA52.num_classes:
        detection["mAP_all_classes"] = None if np.isnan(ap).any() else _r(float(ap.mean(axis=1).mean()))
    prf = {}
    for c in classes:
        m = precision_recall_f1([s for s in inp.gold if s.label == c], [s for s in inp.predictions if s.label == c])
        prf[str(c)] = {"name": tax[c].label, "precision": _r(m.precision), "recall": _r(m.recall), "f1": _r(m.f1),
                       "tp": m.tp, "detections": m.detections, "gold": m.gold}
    return {"detection": detection, "at_tiou_0.5": {"per_class": prf}, "frames": _frames_section(inp, classes),
            "unmatched": {k2: dict(v) for k2, v in inp.unmatched.items()}, "skipped": dict(inp.skipped)}


def draw_agreement(inp: AgreementInputs, doc: Mapping[str, Any], path: str | os.PathLike,
                   max_videos: int = 12) -> Path:
    """The picture: per-class AP (mean over the nine tIoU) as bars, then per video the gold
    timeline above the predicted one (first ``max_videos`` videos), one colour per class."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_class = doc["detection"]["per_class"]
    videos = list(inp.videos)[:max_videos]
    fig, axes = plt.subplots(1 + len(videos), 1, figsize=(10, 2.6 + 1.1 * len(videos)), squeeze=False,
                             gridspec_kw={"height_ratios": [2.2] + [1] * len(videos)})
    ax = axes[0, 0]
    names = [per_class[c]["name"] for c in per_class]
    means = [np.mean([v for v in per_class[c]["ap"] if v is not None]) if any(v is not None for v in per_class[c]["ap"])
             else 0.0 for c in per_class]
    ax.bar(range(len(names)), means, color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
    ax.set_ylim(0, 1); ax.set_ylabel("AP (tIoU 0.1-0.9)")
    ax.set_title(f"mAP {doc['detection']['mAP']}   kappa {doc['frames']['kappa']}", fontsize=9)
    cmap = plt.get_cmap("tab20")
    for row, video in enumerate(videos, 1):
        ax = axes[row, 0]
        for y, segs in ((1, inp.gold), (0, inp.predictions)):
            mine = [s for s in segs if s.video == video]
            by_class: dict[int, list[tuple[float, float]]] = {}
            for s in mine:  # one bar collection per class: 10^6 spans as single artists never finish drawing
                by_class.setdefault(s.label, []).append((s.start_s, s.end_s - s.start_s))
            for label, bars in by_class.items():
                ax.broken_barh(bars, (y - 0.4, 0.8), color=cmap(label % 20), alpha=0.6)
            for s in mine if len(mine) <= _MAX_NAMED_SPANS else []:
                ax.text(s.start_s, y, f" {inp.taxonomy[s.label].label}", va="center", fontsize=6, clip_on=True)
        ax.set_yticks([0, 1], ["predicted", "gold"], fontsize=7)
        ax.set_xlim(0, inp.videos[video][1]); ax.set_ylabel(video, fontsize=7, rotation=0, ha="right")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def run_agreement(pred_paths: Sequence[str | os.PathLike], gold_paths: Sequence[str | os.PathLike],
                  out_dir: str | os.PathLike, *, tier: str | None = None, taxonomy: str | None = None,
                  fps: float = FRAME_RATE) -> dict[str, Any]:
    """Write ``out_dir/detections.csv``, ``agreement.json`` and ``agreement.png``; return the document.
    The scores are computed from the rows of ``detections.csv`` as read back from the file."""
    inp = prepare(pred_paths, gold_paths, tier=tier, taxonomy=taxonomy, fps=fps)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = sorted(inp.predictions, key=lambda s: (s.video, s.start_s, s.end_s, s.label, -s.score))
    write_detection_submission(out / "detections.csv", rows)
    written = tuple(read_submission(out / "detections.csv", inp.taxonomy.num_classes))
    inp = AgreementInputs(inp.gold, written, inp.taxonomy, inp.videos, inp.unmatched, inp.skipped, inp.annotated)
    doc = agreement_document(inp)
    atomic_write_text(out / "agreement.json", json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    draw_agreement(inp, doc, out / "agreement.png")
    return doc
