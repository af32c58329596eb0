"""Video probing and streaming on the real clips, and clear errors for bad files."""
from __future__ import annotations

import hashlib
import inspect
from pathlib import Path

import numpy as np
import pytest

from pose.video import VideoError, iter_frames, prefetch, probe_video
from tests.data import VIDEOS_DIR

CLIP = VIDEOS_DIR / "0030_01_0002.mp4"


def test_probe_reads_metadata_and_hashes():
    info = probe_video(CLIP, hash_whole_file=True)
    data = CLIP.read_bytes()
    assert (info.width, info.height, info.fps, info.frame_count, info.rotation) == (1080, 1296, 30.0, 75, 0)
    assert info.duration == pytest.approx(2.5)
    assert info.file_name == CLIP.name and info.file_size == len(data)
    assert info.sha256_first_mib == hashlib.sha256(data[: 1 << 20]).hexdigest()
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert probe_video(CLIP).sha256 is None


def test_iter_frames_streams_every_frame():
    gen = iter_frames(CLIP)
    assert inspect.isgenerator(gen)
    n = 0
    for i, (index, t, frame) in enumerate(gen):
        assert index == i and t == pytest.approx(i / 30.0, abs=1e-6)
        assert frame.shape == (1296, 1080, 3) and frame.dtype == np.uint8
        n += 1
    assert n == 75
    assert [f for _, _, f in iter_frames(CLIP, decode=False)] == [None] * 75


def _file(name: str, data: bytes):
    def make(d: Path) -> Path:
        (d / name).write_bytes(data)
        return d / name
    return make


@pytest.mark.parametrize("make, problem", [
    (lambda d: d / "missing.mp4", "file not found"),
    (_file("empty.mp4", b""), "file is empty"),
    (_file("notes.mp4", b"not a video\n" * 100), "cannot be opened as a video"),
    (lambda d: d, "not a regular file"),
    # moov atom at the end (as in the clips): a cut file cannot be opened at all
    (_file("cut.mp4", CLIP.read_bytes()[: CLIP.stat().st_size // 2]),
     "cannot be opened as a video"),
])
def test_bad_files_raise_video_error_naming_file_and_problem(tmp_path, make, problem):
    path = make(tmp_path)
    for call in (lambda: probe_video(path), lambda: list(iter_frames(path))):
        with pytest.raises(VideoError, match=problem) as e:
            call()
        assert e.value.path == str(path) and str(path) in str(e.value)


def test_truncated_streamable_file_is_reported_after_its_frames(tmp_path):
    """A 'faststart' file (index first) cut short decodes partly, then raises."""
    av = pytest.importorskip("av")
    fast = tmp_path / "fast.mp4"
    with av.open(str(CLIP)) as src, av.open(str(fast), "w", options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    assert sum(1 for _ in iter_frames(fast)) == 75
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fast.read_bytes()[: int(fast.stat().st_size * 0.6)])
    got = []
    with pytest.raises(VideoError, match=r"truncated or damaged: decoded \d+ of 75 frames"):
        for index, _, _ in iter_frames(cut):
            got.append(index)
    assert 10 < len(got) < 75
    assert len(list(iter_frames(cut, strict=False))) == len(got)


def test_extract_skeleton_reports_bad_videos_as_video_error(tmp_path):
    from pose import extract_skeleton  # lazily resolved top-level name

    bad = tmp_path / "clip.mp4"
    bad.write_text("not a video")
    with pytest.raises(VideoError, match="clip.mp4: cannot be opened as a video"):
        extract_skeleton(bad)


def test_prefetch_yields_the_same_frames_in_order():
    plain = [(i, t, f.sum()) for i, t, f in iter_frames(CLIP)]
    ahead = [(i, t, f.sum()) for i, t, f in prefetch(iter_frames(CLIP), depth=3)]
    assert ahead == plain and len(ahead) == 75


def test_prefetch_raises_the_sources_error_after_its_items(tmp_path):
    def truncated():  # what iter_frames does with a cut file: frames first, then the error
        yield from range(5)
        raise VideoError(tmp_path / "cut.mp4", "truncated or damaged: decoded 5 of 75 frames")

    seen = []
    with pytest.raises(VideoError, match="cut.mp4: truncated"):
        for i in prefetch(truncated(), depth=2):
            seen.append(i)
    assert seen == [0, 1, 2, 3, 4]


def test_prefetch_closed_early_stops_and_closes_the_source():
    closed = []

    def source():
        try:
            yield from range(1000)
        finally:
            closed.append(True)

    gen = prefetch(source(), depth=2)
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    gen.close()  # joins the producer thread
    assert closed == [True]
