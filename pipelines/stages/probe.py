"""Stage 1, probe: what a video file is (size, frame rate, frame size) before decoding it all."""
from __future__ import annotations

from pathlib import Path

from core.hashing import MIB, sha256_file
from pipelines.discovery import VideoJob
from pipelines.stages.errors import StageError
from pose.video import VideoInfo

__all__ = ["input_fingerprint", "probe"]


def probe(job: VideoJob) -> VideoInfo:
    """The video's :class:`pose.video.VideoInfo`; raises :class:`StageError` (stage ``probe``)
    for a missing, empty or undecodable file."""
    from pose.video import VideoError, probe_video

    try:
        return probe_video(job.path)
    except VideoError as e:
        raise StageError("probe", str(e)) from None
    except OSError as e:
        raise StageError("probe", f"{job.path}: {e.strerror or e}") from None


def input_fingerprint(path: Path) -> dict[str, int | str]:
    """Size and sha256 of the first MiB: what identifies a video's content for resuming."""
    return {"size": path.stat().st_size, "sha256_first_mib": sha256_file(path, MIB)}
