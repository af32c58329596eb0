"""The page: a Gradio Blocks layout and its two callbacks.

- ``analyse`` (Run): checks the upload, runs the pipeline in a private folder, shows the
  annotated video, timeline, top-5 tables, the window heatmaps and the downloads;
- ``window`` (time slider): the top-5, heatmap and skeleton heat of the window at a time;
- the Live tab (webcam): :mod:`app.live_tab`.

Both callbacks work in a fresh private folder (mode 0700) that is deleted once Gradio has
copied the results into its cache (the callbacks are generators: the folder goes in their
``finally``, which runs after the yielded outputs were post-processed). Only files Gradio
itself received as uploads (or the bundled example clips) are ever opened.
"""
from __future__ import annotations

import atexit
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from app.config import AppConfig
from app.engine import STREAMS, Analysis, Models, Settings, analyse, shared_estimator
from app.folders import RequestFolders
from app.summaries import clip_top_k, top_k_html, window_at
from app.validate import Limits, UploadError, check_upload
from mmn.model import MAP_NAMES
from pipelines.drawing import figures
from pipelines.formats.labels_doc import body_levels_of
from pipelines.job import LAYOUT, StageError

log = logging.getLogger("app")
DEFAULTS = Settings()  # the page's initial settings are the job's defaults
TITLE = "MMN micro-action recognition"
NO_CHECKPOINT_BANNER = """<div class="mmn-banner">
<b>No MMN checkpoint is configured, so there are no action labels.</b> Labels need the MMN
authors' MA-52 checkpoint (joint, optionally bone; published on their
<a href="https://drive.google.com/drive/folders/15yubRV4BOQ18QqFNbB2w6ui30S_UtM7W" target="_blank">Google Drive</a>,
see the README, <i>The authors' checkpoints</i>) or one trained with <code>python -m mmn.train</code>.
Start the app with <code>python -m app --weights MA52_J.pt [--weights-bone MA52_B.pt]</code>
(or <code>MMN_APP_WEIGHTS=…</code>). Until then the skeleton, the motion-energy heatmap and the
annotated video still work.</div>"""


def example_files(cfg: AppConfig) -> list[Path]:
    """The bundled example clips (mp4 files in ``cfg.examples_dir``)."""
    d = Path(cfg.examples_dir)
    return sorted(p for p in d.glob("*.mp4") if p.is_file()) if d.is_dir() else []


def _readable(message: str, *paths: Path | str) -> str:
    """``message`` without server paths (each replaced by its file name)."""
    for p in paths:
        if p:
            message = message.replace(str(p), Path(p).name)
    return message


def window_views(state: dict[str, Any], t: float, workdir: Path) -> tuple[str, str, str, str]:
    """Top-5 HTML, heatmap PNG, skeleton PNG and timeline PNG for the window at ``t`` s."""
    doc, fps = state["doc"], float(state["fps"])
    heat, kp = state["heat"], state["keypoints"]
    n = len(kp)
    duration = n / fps
    t = float(np.clip(t, 0.0, max(duration - 1e-6, 0.0)))
    w = window_at(doc["windows"], t)
    source = state["heat_source"]
    if w is None:  # no windows at all (cannot happen for a processed video)
        w = {"index": 0, "start_frame": 0, "end_frame": n, "start_s": 0.0, "end_s": duration}
    s0, s1 = int(w["start_frame"]), max(int(w["end_frame"]), int(w["start_frame"]) + 1)
    frame = int(np.clip(round(t * fps), s0, s1 - 1))
    span = f"window {w['index']} ({w['start_s']:.2f}–{w['end_s']:.2f} s)"
    if w.get("top_k"):
        table = top_k_html(w["top_k"], f"Top-5 in {span}", body_levels=body_levels_of(doc))
    else:
        table = top_k_html([], f"Top-5 in {span}", w.get("skipped") or
                           "no labels: no checkpoint configured (see the banner above)")
    hm = figures.joint_heatmap(heat[s0:s1], fps, s0, LAYOUT, source, vmax=1.0, marker_frame=frame,
                               title=f"{figures.heat_name(source)} · {span}")
    present = np.isfinite(kp[s0:s1]).all(axis=2).any(axis=1)
    if present.any() and not present[frame - s0]:
        frame = s0 + int(np.flatnonzero(present)[np.argmin(np.abs(np.flatnonzero(present) - (frame - s0)))])
    sk = figures.skeleton_heat(kp[frame], heat[s0:s1].mean(axis=0), LAYOUT, source, vmax=1.0,
                               title=f"{span}: mean heat on the pose at {frame / fps:.2f} s")
    tl = figures.timeline(duration, doc["segments"], doc["windows"], state["energy"], fps, marker_s=t,
                          note=None if state["has_labels"] else "no labels (no checkpoint configured)",
                          body_levels=body_levels_of(doc), region_motion=state.get("region_motion"))
    return (table, str(hm.save(workdir / "heatmap.png")), str(sk.save(workdir / "skeleton.png")),
            str(tl.save(workdir / "timeline.png")))


def _results(a: Analysis, settings: Settings, workdir: Path, models: Models | None) -> tuple:
    """The page's outputs for one analysed video."""
    state = a.state()
    t0 = round(a.duration_s / 2, 2)
    table, hm, sk, tl = window_views(state, t0, workdir)
    doc = a.doc
    if a.has_labels:
        top, used = clip_top_k(doc["windows"], 5)
        clip_html = top_k_html(top, f"Top-5 for the whole video (mean over {used} labelled windows)",
                               "no window had the subject in view", body_levels_of(doc))
    else:
        clip_html = top_k_html([], "Top-5 for the whole video", "no labels: no checkpoint configured")
    labelled = sum(1 for w in doc["windows"] if w.get("top_k"))
    timing = doc.get("timing_s", {})
    model = (f"{models.describe()}, stream {models.resolve(settings.stream)}"
             if a.has_labels and models else "no checkpoint (motion energy only)")
    status = (f"**Done: {a.name}**: {doc['video']['frame_count']} frames, {a.duration_s:.2f} s at {a.fps:g} fps; "
              f"{len(doc['windows'])} windows of {settings.window_s:g} s every {settings.stride_s:g} s, "
              f"{labelled} labelled, {len(doc['segments'])} segments. Model: {model}. Heat: "
              f"{figures.heat_name(a.heat_source)}. Time: pose {timing.get('pose', 0):.1f} s, model "
              f"{timing.get('model', 0):.1f} s, video {timing.get('render', 0):.1f} s.")
    slider = gr.Slider(minimum=0.0, maximum=round(a.duration_s, 2), value=t0, step=round(1.0 / a.fps, 4),
                       interactive=True, label="Time (s): pick a window")
    files = [str(a.outputs.clip), str(a.outputs.labels), str(a.outputs.skeleton)]
    files += [str(p) for p in (a.outputs.events, a.outputs.eaf) if p.is_file()]  # for BORIS / R and ELAN
    return (status, str(a.outputs.clip), tl, clip_html, slider, table, hm, sk, files, state)


def build_app(cfg: AppConfig, models: Models | None, folders: RequestFolders) -> gr.Blocks:
    """The Blocks app for ``cfg`` (``models`` None: no checkpoint, no labels); per-request
    folders go under ``folders`` (the caller closes it when the server stops)."""
    estimator = shared_estimator(cfg)
    if estimator is not None:
        atexit.register(estimator.close)
    limits = Limits(cfg.max_upload_bytes, cfg.max_duration_s, cfg.max_frames, cfg.max_frame_pixels)
    examples = example_files(cfg)

    def allowed_roots() -> list[Path]:
        from gradio.utils import get_upload_folder

        return [Path(get_upload_folder()).resolve(), Path(cfg.examples_dir).resolve()]

    def check_only(video: str | None) -> str:
        if not video:
            return ""
        try:
            return "**Ready:** " + check_upload(video, limits, allowed_roots()).summary() + " — press **Run**."
        except UploadError as e:
            return f"**Refused:** {e}"

    def run(video: str | None, window_s: float, stride_s: float, stream: str | None, smoothing_s: float,
            heatmap: str, progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
        workdir = folders.new()
        checked = None
        try:
            try:
                checked = check_upload(video, limits, allowed_roots())
                settings = Settings(float(window_s), float(stride_s), stream, float(smoothing_s),
                                    heatmap if heatmap in MAP_NAMES else DEFAULTS.heatmap)
                analysis = analyse(checked, settings, models, cfg, workdir, progress, estimator)
            except UploadError as e:
                raise gr.Error(str(e), duration=None, print_exception=False) from None
            except StageError as e:
                msg = _readable(str(e), checked.path if checked else "", workdir)
                raise gr.Error(f"{checked.name if checked else 'video'}: failed at {e.stage}: {msg}",
                               duration=None, print_exception=False) from None
            except ValueError as e:
                raise gr.Error(str(e), duration=None, print_exception=False) from None
            except gr.Error:
                raise
            except Exception as e:  # keep serving; say what happened without server paths
                log.exception("processing %s failed", video)
                raise gr.Error(_readable(f"processing failed: {type(e).__name__}: {e}",
                                         checked.path if checked else "", workdir), duration=None) from None
            progress(None, desc="Drawing the figures")
            yield _results(analysis, settings, workdir, models)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def pick_window(state: dict[str, Any] | None, t: float) -> Iterator[tuple]:
        if not state:
            raise gr.Error("Run a video first.", duration=5, print_exception=False)
        workdir = folders.new()
        try:
            yield window_views(state, float(t), workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def live(blocks: gr.Blocks) -> None:
        from app.live_tab import live_tab

        live_tab(cfg, models, folders, blocks)

    return _page(cfg, models, examples, check_only, run, pick_window, live)


def _page(cfg: AppConfig, models: Models | None, examples: list[Path], check_only: Callable[..., str],
          run: Callable[..., Iterator[tuple]], pick_window: Callable[..., Iterator[tuple]],
          live: Callable[[gr.Blocks], None]) -> gr.Blocks:
    """The page's layout and its events (``check_only``, ``run``, ``pick_window``); ``live``
    builds the Live tab (:func:`app.live_tab.live_tab`)."""
    blocks = gr.Blocks(title=TITLE, delete_cache=(min(600, cfg.cache_ttl_s), cfg.cache_ttl_s))
    with blocks:
        gr.Markdown(f"# {TITLE}\nMicro-actions of a seated person from a video: pose → "
                    f"{LAYOUT.num_joints}-joint skeleton → MMN over sliding windows. "
                    + (f"Classes: {models.describe_taxonomy()}." if models is not None else ""))
        gr.HTML(NO_CHECKPOINT_BANNER, visible=models is None, elem_id="no-checkpoint-banner")
        if models is not None:
            gr.Markdown(f"Checkpoint: `{models.describe()}`")
        with gr.Tabs():
            with gr.Tab("Video file", id="upload"):
                with gr.Row():
                    with gr.Column(scale=2, min_width=320):
                        video_in = gr.Video(label="Video", sources=["upload"], include_audio=True, elem_id="video-in",
                                            height=360)
                        gr.Markdown(f"<small>{cfg.limits_text()}</small>", elem_id="limits")
                        upload_status = gr.Markdown("", elem_id="upload-status")
                        if examples:
                            gr.Examples([[str(p)] for p in examples], inputs=[video_in],
                                        label="Example clips (MA-52 public samples)")
                        with gr.Accordion("Settings", open=True):
                            with gr.Row():
                                window_s = gr.Slider(0.5, 4.0, value=DEFAULTS.window_s, step=0.1, label="Window (s)",
                                                     info="one MMN clip (MA-52 clips are ~2 s)")
                                stride_s = gr.Slider(0.1, 2.0, value=DEFAULTS.stride_s, step=0.05, label="Stride (s)")
                            choices = models.stream_choices if models else list(STREAMS[1:2])
                            stream = gr.Radio(choices, value=choices[0], label="Streams",
                                              info="2S = 0.5 joint + 0.5 bone logits",
                                              visible=models is not None and len(choices) > 1)
                            smoothing_s = gr.Slider(0.0, 1.0, value=DEFAULTS.smoothing_s, step=0.05,
                                                    label="Pose smoothing (s)", info="Savitzky–Golay window; 0 = off")
                            heatmap = gr.Dropdown([(figures.heat_name(m), m) for m in MAP_NAMES],
                                                  value=DEFAULTS.heatmap, label="Modulation heat",
                                                  visible=models is not None,
                                                  info="MMN map drawn as per-joint heat")
                        run_btn = gr.Button("Run", variant="primary", elem_id="run")
                    with gr.Column(scale=3, min_width=420):
                        video_out = gr.Video(label="Annotated video", interactive=False, elem_id="video-out",
                                             height=520, autoplay=False)
                        status = gr.Markdown("", elem_id="run-status")
                timeline_img = gr.Image(label="Timeline of predicted micro-actions", type="filepath", format="png",
                                        interactive=False, show_label=False, elem_id="timeline")
                with gr.Row():
                    clip_top = gr.HTML(top_k_html([], "Top-5 for the whole video", "run a video"), elem_id="clip-top")
                    with gr.Column():
                        time_slider = gr.Slider(0.0, 1.0, value=0.0, step=0.01, label="Time (s): pick a window",
                                                interactive=False, elem_id="time")
                        window_top = gr.HTML(top_k_html([], "Top-5 in the window at that time", "run a video"),
                                             elem_id="window-top")
                with gr.Row():
                    heatmap_img = gr.Image(label="Per-joint heat of the window (time × 44 joints)", type="filepath",
                                           format="png", interactive=False, show_label=False, elem_id="heatmap")
                    skeleton_img = gr.Image(label="The same heat on the skeleton", type="filepath", format="png",
                                            interactive=False, show_label=False, elem_id="skeleton")
                downloads = gr.File(label="Downloads: annotated mp4, labels JSON, skeleton HDF5", file_count="multiple",
                                    interactive=False, elem_id="downloads")
                state = gr.State(None)
            with gr.Tab("Live (webcam)", id="live", elem_id="live-tab"):
                live(blocks)

        video_in.change(check_only, [video_in], [upload_status], api_name="check", queue=False)
        run_btn.click(run, [video_in, window_s, stride_s, stream, smoothing_s, heatmap],
                      [status, video_out, timeline_img, clip_top, time_slider, window_top, heatmap_img,
                       skeleton_img, downloads, state], api_name="analyse", concurrency_id="video",
                      show_progress_on=[video_out])
        time_slider.release(pick_window, [state, time_slider], [window_top, heatmap_img, skeleton_img, timeline_img],
                            api_name="window", concurrency_limit=4)
    return blocks
