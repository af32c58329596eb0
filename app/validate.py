"""Upload checks: is this a video we accept? Every refusal is an :class:`UploadError` whose
message is meant for the person who uploaded the file (it names the file, never a server path).

Checks, cheapest first: the file lies where uploads are stored, it is a regular non-empty
file within the size limit, its name has a video suffix, its first bytes are those of a video
container (not only its name), it decodes (:func:`pose.video.probe_video`), and it is no
longer than the duration limit.
"""
from __future__ import annotations

import math
import mimetypes
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipelines.discovery import VIDEO_SUFFIXES

_QUICKTIME_ATOMS = {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")


class UploadError(ValueError):
    """The upload is refused; ``str(e)`` is a readable reason."""


@dataclass(frozen=True)
class Limits:
    """What one upload may cost: bytes, seconds, and the work itself (frames, pixels a frame)."""

    max_bytes: int
    max_duration_s: float
    max_frames: int = 1800
    max_frame_pixels: int = 1920 * 1088


@dataclass(frozen=True)
class CheckedVideo:
    """An accepted upload: its file, the name to show, and what probing found."""

    path: Path
    name: str
    container: str
    size: int
    width: int
    height: int
    fps: float
    frame_count: int
    duration_s: float

    def summary(self) -> str:
        return (f"{self.name}: {self.width}×{self.height}, {self.duration_s:.1f} s at {self.fps:g} fps "
                f"({self.frame_count} frames, {self.size / 1e6:.1f} MB)")


def sniff_container(head: bytes) -> str | None:
    """The video container family from a file's first bytes (≥ 16), or None when they are not
    those of a container this app reads."""
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS:
        return "mp4/quicktime"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska/webm"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "mpeg"
    if head[:16] == _ASF_GUID:
        return "asf/wmv"
    return None


def _inside(path: Path, roots: Iterable[Path]) -> bool:
    for root in roots:
        try:
            path.relative_to(Path(root).resolve())
            return True
        except ValueError:
            continue
    return False


def _human_mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def check_upload(path: str | os.PathLike | None, limits: Limits,
                 allowed_roots: Iterable[Path] | None = None) -> CheckedVideo:
    """Accept ``path`` as a video within ``limits`` or raise :class:`UploadError`.

    ``allowed_roots``: folders the file must resolve into (the server's upload folder and the
    bundled examples); a path elsewhere is refused without being opened.
    """
    if path is None or str(path) == "":
        raise UploadError("No video given: upload a video file or pick one of the example clips.")
    raw = Path(path)
    name = raw.name
    resolved = raw.resolve()
    if allowed_roots is not None and not _inside(resolved, allowed_roots):
        raise UploadError(f"{name}: not an uploaded file; upload the video through the page.")
    if not resolved.is_file():
        raise UploadError(f"{name}: the uploaded file is missing (upload it again).")
    size = resolved.stat().st_size
    if size == 0:
        raise UploadError(f"{name}: the file is empty (0 bytes).")
    if size > limits.max_bytes:
        raise UploadError(f"{name}: {_human_mb(size)} is over the upload limit of {_human_mb(limits.max_bytes)}.")
    suffix = resolved.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        kind = mimetypes.guess_type(name)[0] or "an unknown type"
        raise UploadError(f"{name}: not a video file ({kind}). Accepted: "
                          f"{', '.join(sorted(s.lstrip('.') for s in VIDEO_SUFFIXES))}.")
    with open(resolved, "rb") as f:
        head = f.read(64)
    container = sniff_container(head)
    if container is None:
        raise UploadError(f"{name}: the name says video but the content is not a video container "
                          f"(damaged, or another kind of file renamed).")

    from pose.video import VideoError, probe_video

    declared = _declared_pixels(resolved)  # from the header, before any frame is decoded
    if declared > limits.max_frame_pixels:
        raise UploadError(f"{name}: frames of {declared / 1e6:.1f} megapixels are larger than the limit of "
                          f"{limits.max_frame_pixels / 1e6:.1f} megapixels; scale the video down.")
    try:
        info = probe_video(resolved)
    except VideoError as e:
        raise UploadError(f"{name}: {e.problem}.") from None
    if info.width * info.height > limits.max_frame_pixels:
        raise UploadError(f"{name}: frames of {info.width}×{info.height} are larger than the limit of "
                          f"{limits.max_frame_pixels / 1e6:.1f} megapixels; scale the video down.")
    # the container's frame count can be missing or wrong: count (demux only) up to the limits
    stop = min(limits.max_frames, int(math.ceil(limits.max_duration_s * info.fps))) + 1
    frames = _count_frames(resolved, stop)
    if frames > limits.max_frames:
        raise UploadError(f"{name}: {frames if frames < stop else f'more than {limits.max_frames}'} frames "
                          f"({info.fps:g} fps) is more than the limit of {limits.max_frames} frames; "
                          f"cut the video shorter or lower its frame rate.")
    duration = frames / info.fps
    if duration > limits.max_duration_s + 0.5 / info.fps:
        raise UploadError(f"{name}: {duration:.1f} s is longer than the limit of {limits.max_duration_s:g} s; "
                          f"cut the video shorter (or raise max_duration_s).")
    return CheckedVideo(resolved, name, container, size, info.width, info.height, float(info.fps), frames, duration)


def _declared_pixels(path: Path) -> int:
    """Width × height of the first video stream as its header declares it (0 if unreadable)."""
    import av

    try:
        with av.open(str(path)) as container:
            if container.streams.video:
                ctx = container.streams.video[0].codec_context
                return int(ctx.width or 0) * int(ctx.height or 0)
    except (av.FFmpegError, OSError, ValueError):
        pass
    return 0


def _count_frames(path: Path, stop_after: int) -> int:
    """Video packets in the file (one per frame), demuxed without decoding, counting up to
    ``stop_after``."""
    import av

    n = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return 0
            for packet in container.demux(container.streams.video[0]):
                if packet.size:  # the demuxer's final empty packet is no frame
                    n += 1
                    if n >= stop_after:
                        break
    except (av.FFmpegError, OSError):
        pass  # a damaged tail: what was counted stands (decoding reports the damage later)
    return n
