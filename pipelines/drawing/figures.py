"""Pictures of a labelled video, as pure functions: data in, a PNG (:class:`Picture`) out.
``pipelines.video_to_labels`` writes the whole-video heatmap and timeline; the web app draws
the same figures per window.

- :func:`mpl_timeline`: predicted micro-action segments over time, coloured by MA-52 body level
  and labelled, with each window's top-1 underneath and the motion-energy curve;
- :func:`mpl_joint_heatmap`: time × joints heat, rows grouped and labelled by body part;
- :func:`skeleton_heat`: the same heat on a skeleton figure.

:func:`timeline` and :func:`joint_heatmap`, the versions the pipeline and the app draw, are
:mod:`pipelines.drawing.raster`'s: the same two pictures drawn in pixels, 10-20 times faster
(``benchmarks/bench_pictures.py``).

Drawing uses matplotlib's object API on an Agg canvas (no pyplot state, so it is safe in the
server's worker threads). Colours per body level are the annotated clip's
(:data:`pipelines.drawing.render.BODY_LEVEL_COLOURS_BGR`); heat uses the turbo colour map as there.
"""
from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from core.layouts import MA52_44, SkeletonLayout
from pipelines.drawing import raster
from pipelines.drawing.picture import (  # noqa: F401
    HEAT_NAMES,
    PART_COLOURS_RGB,
    ROWS_KEY,
    Picture,
    body_rgb,
    grouped_joint_order,
    heat_name,
    pack_rows,
    read_row_labels,
)

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn: importing this module stays cheap
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PART_COLOURS = tuple("#{:02x}{:02x}{:02x}".format(*rgb) for rgb in PART_COLOURS_RGB)  # one per body part


def body_colour(index: int) -> tuple[float, float, float]:
    """RGB in [0, 1] of a body level (−1 or out of range: the 'no label' grey)."""
    r, g, b = body_rgb(index)
    return (r / 255, g / 255, b / 255)


def _render(fig: Figure, dpi: int, row_labels: Sequence[str] = ()) -> Picture:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # attach an Agg canvas (no pyplot)
    buf = io.BytesIO()
    meta = {"Software": "mmn-microaction"}
    if row_labels:
        meta[ROWS_KEY] = json.dumps(list(row_labels))
    fig.savefig(buf, format="png", dpi=dpi, metadata=meta, facecolor="white")
    png = buf.getvalue()
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        w, h = im.size
    return Picture(png, w, h, tuple(row_labels))


# --------------------------------------------------------------------------- timeline


def mpl_timeline(duration_s: float, segments: Sequence[dict[str, Any]], windows: Sequence[dict[str, Any]],
             energy: np.ndarray | None = None, fps: float | None = None, marker_s: float | None = None,
             note: str | None = None, title: str = "Predicted micro-actions over time",
             body_levels: Sequence[tuple[str, str]] = (), region_motion: Mapping[str, np.ndarray] | None = None,
             width_in: float = 12.0, dpi: int = 100) -> Picture:
    """Micro-action timeline of one video.

    Args:
        duration_s: video length in seconds (the x range).
        segments: the labels document's ``segments`` (with ``code``, ``name``, ``mean_prob``
            and ``body_code`` where the taxonomy has them).
        windows: the labels document's ``windows``; each labelled one is drawn as a thin bar
            in its top-1 colour (stacked so overlapping windows stay visible).
        energy: (N,) per-frame motion energy (drawn as a curve) with ``fps``.
        marker_s: draw the chosen time as a vertical line.
        note: text shown when there is nothing labelled (e.g. no checkpoint).
        title: the figure's title (top left; the body-level legend is top right).
        body_levels: the taxonomy's ``(code, name)`` body levels (the labels document's
            ``model.taxonomy.body_levels``): colours and legend; empty for a taxonomy without.
        region_motion: body part → (N,) pixel motion energy per frame (grey levels per pixel),
            drawn as one curve per part in a fourth panel.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    duration_s = max(float(duration_s), 1e-3)
    labelled = [w for w in windows if w.get("top_k")]
    rows = pack_rows([(w["start_s"], w["end_s"]) for w in windows])
    n_rows = max(rows, default=0) + 1
    ratios = [1.25, 0.35 + 0.12 * n_rows, 0.8] + ([1.2] if region_motion else [])
    fig = Figure(figsize=(width_in, 3.2 + 0.12 * n_rows + (1.4 if region_motion else 0.0)))
    gs = fig.add_gridspec(len(ratios), 1, height_ratios=ratios, hspace=0.12)
    axes = [fig.add_subplot(gs[i]) for i in range(len(ratios))]
    ax_seg, ax_win, ax_en = axes[:3]
    for ax in axes:
        ax.set_xlim(0, duration_s)
        ax.set_yticks([])
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    ax_seg.tick_params(labelbottom=False)
    ax_win.tick_params(labelbottom=False)

    body_index = {code: i for i, (code, _) in enumerate(body_levels)}
    _draw_segments(ax_seg, segments, body_index, duration_s,
                   note or ("no window reached the confidence threshold" if labelled else "no labels"))
    _draw_windows(ax_win, windows, rows, n_rows, body_index, duration_s)
    axes[-1].set_xlabel("time (s)")
    _draw_motion(ax_en, axes[3] if region_motion else None, energy, fps, region_motion)
    if marker_s is not None:
        for ax in axes:
            ax.axvline(marker_s, color="black", linewidth=1.5, linestyle="--")

    handles = [Patch(facecolor=body_colour(i), label=f"{code} {name}") for i, (code, name) in enumerate(body_levels)]
    size_h = fig.get_size_inches()[1]
    fig.suptitle(title, x=0.09, y=1 - 0.08 / size_h, ha="left", va="top", fontsize=11, fontweight="bold")
    if handles:
        fig.legend(handles=handles, loc="upper left", ncol=len(handles), frameon=False, fontsize=9,
                   bbox_to_anchor=(0.085, 1 - 0.3 / size_h), handlelength=1.2, columnspacing=1.4)
    fig.subplots_adjust(left=0.09, right=0.99, top=1 - 0.72 / size_h, bottom=0.5 / size_h)
    return _render(fig, dpi)


def _draw_segments(ax_seg: Axes, segments: Sequence[dict[str, Any]], body_index: Mapping[str, int],
                   duration_s: float, empty_note: str) -> None:
    """Segments: merged runs of the same top-1 class above the threshold."""
    from matplotlib.patches import Rectangle

    ax_seg.set_ylim(0, 1)
    ax_seg.set_ylabel("segments", rotation=0, ha="right", va="center")
    for seg in segments:
        colour = body_colour(body_index.get(seg.get("body_code", ""), -1))
        x0, x1 = seg["start_s"], seg["end_s"]
        ax_seg.add_patch(Rectangle((x0, 0.08), x1 - x0, 0.84, facecolor=colour, edgecolor="white", linewidth=1.5))
        label = f"{seg.get('code', seg['class_index'])} {seg['name']}\n{seg['mean_prob']:.0%}"
        span = (x1 - x0) / duration_s
        if span > 0.06:
            ax_seg.text((x0 + x1) / 2, 0.5, label, ha="center", va="center", color="white",
                        fontsize=10 if span > 0.15 else 8, fontweight="bold", clip_on=True)
        else:
            ax_seg.text((x0 + x1) / 2, 0.5, str(seg.get("code", seg["class_index"])), ha="center",
                        va="center", color="white", fontsize=7, clip_on=True)
    if not segments:
        ax_seg.text(duration_s / 2, 0.5, empty_note, ha="center", va="center", fontsize=10, color="0.3", wrap=True)


def _draw_windows(ax_win: Axes, windows: Sequence[dict[str, Any]], rows: Sequence[int], n_rows: int,
                  body_index: Mapping[str, int], duration_s: float) -> None:
    """Windows: each labelled window's top-1, alpha by probability."""
    from matplotlib.patches import Rectangle

    ax_win.set_ylim(0, n_rows)
    ax_win.set_ylabel("windows\n(top-1)", rotation=0, ha="right", va="center")
    for w, row in zip(windows, rows):
        top = (w.get("top_k") or [None])[0]
        if top is None:
            colour, alpha = body_colour(-1), 0.35
        else:
            colour = body_colour(body_index.get(top.get("body_code", ""), -1))
            alpha = 0.35 + 0.65 * float(top["prob"])
        ax_win.add_patch(Rectangle((w["start_s"], row + 0.12), w["end_s"] - w["start_s"], 0.76,
                                   facecolor=colour, alpha=alpha, edgecolor="white", linewidth=0.8))
        if top is not None and (w["end_s"] - w["start_s"]) / duration_s > 0.08 and n_rows <= 4:
            ax_win.text((w["start_s"] + w["end_s"]) / 2, row + 0.5, top.get("code", str(top["index"])),
                        ha="center", va="center", fontsize=7, color="white", clip_on=True)


def _draw_motion(ax_en: Axes, ax_px: Axes | None, energy: np.ndarray | None, fps: float | None,
                 region_motion: Mapping[str, np.ndarray] | None) -> None:
    """The skeleton's motion energy, and the pixel motion per body part (on ``ax_px``)."""
    ax_en.set_ylabel("skeleton\nmotion", rotation=0, ha="right", va="center")
    if energy is not None and len(energy) > 1 and fps:
        e = np.nan_to_num(np.asarray(energy, np.float64))
        t = (np.arange(len(e)) + 0.5) / fps
        ax_en.fill_between(t, 0, e, color="0.55", alpha=0.5, linewidth=0)
        ax_en.plot(t, e, color="0.25", linewidth=1)
        ax_en.set_ylim(0, max(float(e.max()) * 1.1, 1e-6))
    if region_motion and ax_px is not None:
        ax_en.tick_params(labelbottom=False)
        ax_px.set_ylabel("pixel motion\nper part", rotation=0, ha="right", va="center")
        top = 1e-6
        for i, (name, series) in enumerate(region_motion.items()):
            v = np.asarray(series, np.float64)
            t = (np.arange(len(v)) + 0.5) / fps if fps else np.arange(len(v))
            ax_px.plot(t, v, color=PART_COLOURS[i % len(PART_COLOURS)], linewidth=1.1, label=name)
            if np.isfinite(v).any():
                top = max(top, float(np.nanmax(v)))
        ax_px.set_ylim(0, top * 1.1)
        ax_px.legend(loc="upper right", ncol=len(region_motion), fontsize=8, frameon=False)


# --------------------------------------------------------------------------- heatmap


def mpl_joint_heatmap(heat: np.ndarray, fps: float, start_frame: int = 0, layout: SkeletonLayout = MA52_44,
                  source: str = "motion_energy", title: str | None = None, marker_frame: int | None = None,
                  vmax: float | None = None, dpi: int = 100) -> Picture:
    """Time × joints heat picture with one labelled row per joint, grouped by body part.

    Args:
        heat: (T, V) heat of frames ``start_frame … start_frame + T − 1`` (any scale; shown
            between 0 and ``vmax``, default the array's maximum).
        fps: frame rate, for the time axis.
        source: heat name (e.g. ``msm_gamma`` or ``motion_energy``), for the colour-bar label.
        marker_frame: absolute frame to mark with a vertical line.
    Returns:
        :class:`Picture` whose ``row_labels`` are the joint names top to bottom (also stored in
        the PNG's ``mmn:rows`` text chunk).
    """
    from matplotlib.figure import Figure

    heat = np.nan_to_num(np.asarray(heat, np.float32))
    if heat.ndim != 2 or heat.shape[1] != layout.num_joints:
        raise ValueError(f"heat must be (T, {layout.num_joints}), got {heat.shape}")
    t = max(heat.shape[0], 1)
    order, groups = grouped_joint_order(layout)
    grid = heat[:, order].T if heat.shape[0] else np.zeros((layout.num_joints, 1), np.float32)
    v = layout.num_joints
    fig = Figure(figsize=(7.2, 0.17 * v + 1.6))
    ax = fig.add_subplot(1, 1, 1)
    t0 = start_frame / fps
    extent = (t0, t0 + t / fps, v - 0.5, -0.5)
    top = float(vmax) if vmax is not None else float(grid.max()) if grid.size else 1.0
    im = ax.imshow(grid, aspect="auto", cmap="turbo", interpolation="nearest", extent=extent,
                   vmin=0.0, vmax=max(top, 1e-9))
    ax.set_yticks(np.arange(v))
    ax.set_yticklabels([layout.joint_names[j].replace("_", " ") for j in order], fontsize=7)
    ax.set_xlabel("time (s)")
    parts = ax.twinx()  # body-part names on the right, one per group of rows
    parts.set_ylim(ax.get_ylim())
    parts.set_yticks([first + (count - 1) / 2 for _, first, count in groups])
    parts.set_yticklabels([name for name, _, _ in groups], fontsize=9, fontweight="bold")
    parts.tick_params(length=0)
    for name, first, count in groups:
        if first:
            ax.axhline(first - 0.5, color="white", linewidth=2.5)
    if marker_frame is not None:
        ax.axvline((marker_frame + 0.5) / fps, color="white", linewidth=1.5, linestyle="--")
    size_h = fig.get_size_inches()[1]
    fig.subplots_adjust(left=0.2, right=0.83, top=1 - 0.4 / size_h, bottom=1.25 / size_h)
    cax = fig.add_axes((0.2, 0.55 / size_h, 0.63, 0.12 / size_h))
    cbar = fig.colorbar(im, cax=cax, orientation="horizontal")
    cbar.set_label(heat_name(source), fontsize=8)
    cbar.ax.tick_params(labelsize=7)
    ax.set_title(title or f"per-joint {heat_name(source)}", fontsize=10)
    labels = [tl.get_text().replace(" ", "_") for tl in ax.get_yticklabels()]
    return _render(fig, dpi, labels)


# --------------------------------------------------------------------------- skeleton


def skeleton_heat(keypoints: np.ndarray, heat: np.ndarray, layout: SkeletonLayout = MA52_44,
                  source: str = "motion_energy", title: str | None = None, vmax: float | None = None,
                  label_hottest: int = 3, dpi: int = 100) -> Picture:
    """A skeleton figure with joints coloured and sized by ``heat``.

    Args:
        keypoints: (V, 2) pixel coordinates (image axes: y down), NaN where missing.
        heat: (V,) heat per joint (shown between 0 and ``vmax``, default its maximum).
        label_hottest: name this many hottest joints on the figure.
    """
    from matplotlib.figure import Figure

    kp = np.asarray(keypoints, np.float64)
    h = np.nan_to_num(np.asarray(heat, np.float64))
    fig = Figure(figsize=(4.6, 5.6))
    ax = fig.add_subplot(1, 1, 1)
    ax.set_aspect("equal")
    ax.axis("off")
    ok = np.isfinite(kp).all(axis=1)
    top = float(vmax) if vmax is not None else float(h.max()) if h.size else 1.0
    top = max(top, 1e-9)
    for a, b in layout.bones:
        if ok[a] and ok[b]:
            ax.plot(kp[[a, b], 0], kp[[a, b], 1], color="0.55", linewidth=2, zorder=1)
    sc = ax.scatter(kp[ok, 0], kp[ok, 1], c=h[ok], cmap="turbo", vmin=0, vmax=top,
                    s=25 + 110 * np.clip(h[ok] / top, 0, 1), edgecolors="black", linewidths=0.6, zorder=2)
    if ok.any():
        span = float(np.ptp(kp[ok], axis=0).max()) or 1.0
        centre_x = float(np.median(kp[ok, 0]))
        hottest = [j for j in np.argsort(-np.where(ok, h, -np.inf))[:label_hottest] if ok[j]]
        for rank, j in enumerate(sorted(hottest, key=lambda j: kp[j, 1])):
            side = 1 if kp[j, 0] >= centre_x else -1
            ax.annotate(layout.joint_names[j].replace("_", " "), kp[j], xytext=(side * 48, 22 - 22 * rank),
                        textcoords="offset points", fontsize=8, ha="left" if side > 0 else "right",
                        va="center", arrowprops=dict(arrowstyle="-", color="0.2", linewidth=0.8),
                        bbox=dict(boxstyle="round,pad=0.2", facecolor="white", alpha=0.85, linewidth=0))
        lo, hi = kp[ok].min(axis=0) - 0.1 * span, kp[ok].max(axis=0) + 0.1 * span
        mid, half = (lo[0] + hi[0]) / 2, max(hi[0] - lo[0], 0.75 * (hi[1] - lo[1])) / 2
        ax.set_xlim(mid - half, mid + half)
        ax.set_ylim(hi[1], lo[1])  # image coordinates: y grows downwards
    else:
        ax.text(0.5, 0.5, "no skeleton in this window", ha="center", va="center", transform=ax.transAxes)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.93, bottom=0.13)
    cax = fig.add_axes((0.15, 0.06, 0.7, 0.025))
    cbar = fig.colorbar(sc, cax=cax, orientation="horizontal")
    cbar.set_label(heat_name(source), fontsize=8)
    cbar.ax.tick_params(labelsize=7)
    ax.set_title(title or "heat on the skeleton", fontsize=10)
    return _render(fig, dpi)


# The two pictures the pipeline and the app draw (same arguments and Picture): drawn in pixels,
# 10-20 times faster than the matplotlib versions above (benchmarks/bench_pictures.py).
timeline = raster.timeline
joint_heatmap = raster.joint_heatmap
