"""Video inputs the folder-job tests share: the real clips beside broken files."""
from __future__ import annotations

import shutil
from pathlib import Path

import av

from tests.data import VIDEOS_DIR


def faststart_copy(src: Path, dst: Path) -> bytes:
    """``src`` remuxed (the same packets) with its index at the front, as a stream is served;
    written to ``dst``, whose bytes are returned."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "+faststart"}) as out:
        s_in = inp.streams.video[0]
        s_out = out.add_stream_from_template(s_in)
        for packet in inp.demux(s_in):
            if packet.dts is not None:
                packet.stream = s_out
                out.mux(packet)
    return dst.read_bytes()


def faststart_truncated(src: Path, dst: Path, keep: float = 0.6) -> None:
    """A clip whose index is at the front but whose media data stops at ``keep`` of the file:
    it opens, decodes some frames, then runs dry — a download cut short."""
    tmp = dst.with_suffix(".full.mp4")
    data = faststart_copy(src, tmp)
    dst.write_bytes(data[: int(len(data) * keep)])
    tmp.unlink()


def clips_and_broken_files(folder: Path) -> Path:
    """``folder`` with the real clips, a truncated one (``cut_short.mp4``), an empty
    ``empty.mp4`` and a text file named ``notes.mp4``."""
    for clip in sorted(VIDEOS_DIR.glob("*.mp4")):
        shutil.copy(clip, folder / clip.name)
    faststart_truncated(VIDEOS_DIR / "0030_01_0002.mp4", folder / "cut_short.mp4")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is a text file, not a video\n")
    return folder


def coder_eaf(path: Path, spans: list[tuple[float, float, str]], media: str = "/data/clip.mp4",
              tier: str = "micro-action") -> Path:
    """An ELAN file as a coder's ELAN saves it (made with pympi): ``spans`` (start s, end s,
    value) on ``tier``, the video ``media`` linked."""
    import pympi

    eaf = pympi.Elan.Eaf(author="coder")
    eaf.add_linked_file("file://" + media, relpath=Path(media).name, mimetype="video/mp4")
    eaf.add_tier(tier)
    for start, end, value in spans:
        eaf.add_annotation(tier, int(round(start * 1000)), int(round(end * 1000)), value)
    eaf.remove_tier("default")
    eaf.to_file(str(path))
    return path
