"""What a labelling job is told: :class:`JobOptions` (the ``video_to_labels`` flags of the same
names; the app fills it too) and where each video's files go (:class:`Outputs`).

Pose settings are :class:`pipelines.stages.pose.PoseOptions` and window sizes
:class:`pipelines.stages.windowing.WindowOptions`, shared with the dataset builder; each
default is defined once, on its dataclass.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from core.atomic import remove_stale_parts
from mmn.model import MAP_NAMES
from pipelines.drawing.render import CLIP_PRESETS, CLIP_SIZES
from pipelines.evaluation.review import REVIEW_TOP
from pipelines.formats.user_edits import machine_copy
from pipelines.stages.pose import PoseOptions
from pipelines.stages.windowing import WindowOptions

__all__ = ["JobOptions", "Outputs", "option_default"]


@dataclass(frozen=True)
class JobOptions:
    """How videos are processed. Every value is checked here, so a bad option fails before
    any work. ``display_name``: the video's name in the outputs instead of its path (the
    labels document's ``video.file_name`` and ``video.path``, the events table, the ``.eaf``);
    ``link_video_by_name``: the ``.eaf`` links the video by its name only (files handed to
    someone else) instead of its absolute and relative paths."""

    out: Path
    pose: PoseOptions = field(default_factory=PoseOptions)
    windows: WindowOptions = field(default_factory=WindowOptions)
    threshold: float = 0.5            # min top-1 probability for a window to join a segment
    top_k: int = 5
    heatmap: str = "msm_gamma"        # modulation map drawn as heat (with a checkpoint)
    batch_size: int = 64              # windows per MMN batch
    export_clips: bool = False
    clip_preset: str = "veryfast"
    clip_size: str = "full"           # "half": the annotated clip at half width and height (~3x cheaper)
    pictures: bool = True             # KEY.heatmap.png and KEY.timeline.png
    elan: bool = False                # KEY.eaf (ELAN); KEY.events.csv is always written
    review_top: int = REVIEW_TOP      # windows the .eaf's "to review" tier marks per video (0: none)
    display_name: str | None = None
    link_video_by_name: bool = False
    overwrite: bool = False
    max_frames: int | None = None     # refuse longer videos (the app bounds work with it)

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        need(0.0 <= self.threshold <= 1.0, f"threshold must lie in [0, 1], got {self.threshold}")
        need(self.top_k >= 1, f"top_k must be at least 1, got {self.top_k}")
        need(self.review_top >= 0, f"review_top must be at least 0, got {self.review_top}")
        need(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        need(self.heatmap in MAP_NAMES, f"heatmap must be one of {', '.join(MAP_NAMES)}, got {self.heatmap!r}")
        need(self.clip_preset in CLIP_PRESETS, f"clip_preset must be one of {', '.join(CLIP_PRESETS)}")
        need(self.clip_size in CLIP_SIZES, f"clip_size must be one of {', '.join(CLIP_SIZES)}")
        need(self.max_frames is None or self.max_frames >= 1, f"max_frames must be ≥ 1, got {self.max_frames}")
        need(self.display_name is None or bool(self.display_name.strip()), "display_name must not be empty")


def option_default(name: str) -> object:
    """The default of a :class:`JobOptions` field (the CLI's and the app's defaults)."""
    return next(f.default for f in fields(JobOptions) if f.name == name)


@dataclass(frozen=True)
class Outputs:
    """The files of one video in the output folder."""

    skeleton: Path
    labels: Path
    heatmap: Path
    timeline: Path
    clip: Path
    failed: Path
    motion: Path
    events: Path                      # KEY.events.csv: one row per segment (always)
    eaf: Path                         # KEY.eaf: ELAN tiers (with JobOptions.elan)

    @classmethod
    def for_key(cls, out_dir: Path, key: str) -> Outputs:
        return cls(out_dir / f"{key}.skeleton.h5", out_dir / f"{key}.labels.json", out_dir / f"{key}.heatmap.png",
                   out_dir / f"{key}.timeline.png", out_dir / f"{key}.annotated.mp4", out_dir / f"{key}.failed.json",
                   out_dir / f"{key}.motion.csv", out_dir / f"{key}.events.csv", out_dir / f"{key}.eaf")

    def all(self) -> tuple[Path, ...]:
        return (self.skeleton, self.labels, self.heatmap, self.timeline, self.clip, self.failed, self.motion,
                self.events, self.eaf)

    def expected(self, opts: JobOptions) -> tuple[Path, ...]:
        """The files a finished video has under ``opts``."""
        return ((self.labels, self.skeleton, self.motion) + ((self.heatmap, self.timeline) if opts.pictures else ())
                + ((self.clip,) if opts.export_clips else ()) + (self.events,) + ((self.eaf,) if opts.elan else ()))

    def names(self, opts: JobOptions) -> dict[str, str | None]:
        """The labels document's ``outputs``: each file's name, None where ``opts`` makes none."""
        return {"skeleton": self.skeleton.name, "labels": self.labels.name,
                "heatmap_png": self.heatmap.name if opts.pictures else None,
                "timeline_png": self.timeline.name if opts.pictures else None,
                "annotated_clip": self.clip.name if opts.export_clips else None,
                "events_csv": self.events.name, "eaf": self.eaf.name if opts.elan else None}

    def clean_leftovers(self) -> int:
        """Delete this video's temporary files from an interrupted run (only this video's, and
        those of the copies the job keeps of its annotation files)."""
        return remove_stale_parts(self.all() + (machine_copy(self.events), machine_copy(self.eaf)))
