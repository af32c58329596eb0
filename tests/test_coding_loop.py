"""The coding loop end to end on a real clip: the folder job writes what a coder reviews
(``to review`` tier, ``review.csv``, a BORIS project); the coder's edits in ELAN, in the events
table and in BORIS survive a rerun that redoes the video, and a rerun in which the video fails."""
from __future__ import annotations

import csv
import io
import json
import shutil

import pytest

from pipelines.evaluation.review import REVIEW_COLUMNS, REVIEW_TIER
from pipelines.formats.boris import read_boris
from pipelines.formats.user_edits import machine_copy
from tests.cli import run_cli
from tests.data import VIDEOS_DIR

pympi = pytest.importorskip("pympi")
CLIP = "0030_01_0002.mp4"  # 75 frames: several windows
KEY = CLIP.removesuffix(".mp4")


def _rows(path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def _label(folder, out, weights, *extra):
    return run_cli("pipelines.video_to_labels", folder, "--out", out, "--weights", weights, "--device", "cpu",
                   "--elan", "--boris", *extra, timeout=900)


def _edit_as_a_coder(out) -> None:
    eaf = pympi.Elan.Eaf(str(out / f"{KEY}.eaf"))
    aid, (s, e, _, svg) = next(iter(eaf.tiers["micro-action"][0].items()))
    eaf.tiers["micro-action"][0][aid] = (s, e, "B1 nodding", svg)  # a correction from the vocabulary
    eaf.add_tier("coder notes")
    eaf.add_annotation("coder notes", 100, 900, "checked")
    eaf.to_file(str(out / f"{KEY}.eaf"))
    events = out / f"{KEY}.events.csv"
    events.write_text(events.read_text() + f"{CLIP},2.0,2.4,0.4,9,B1,nodding,,,\n")
    pj = json.loads((out / "labels.boris").read_text())
    stop = pj["observations"][KEY]["events"][-1]
    stop[0] = round(float(stop[0]) - 0.5, 3)  # the coder ends the last interval earlier
    (out / "labels.boris").write_text(json.dumps(pj, indent=1))


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_review_and_corrections_survive_reruns(tmp_path, golden_weights):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    shutil.copy(VIDEOS_DIR / CLIP, folder / CLIP)
    first = _label(folder, out, golden_weights)
    assert first.returncode == 0, first.stderr[-2000:]

    doc = json.loads((out / f"{KEY}.labels.json").read_text())
    review = _rows(out / "review.csv")
    assert list(review[0]) == list(REVIEW_COLUMNS) and len(review) == sum("top_k" in w for w in doc["windows"])
    margins = [float(r["margin"]) for r in review]
    assert margins == sorted(margins)
    tiers = pympi.Elan.Eaf(str(out / f"{KEY}.eaf")).tiers
    assert REVIEW_TIER in tiers and tiers["micro-action"][0]
    boris = read_boris(out / "labels.boris")
    assert {(s.label, s.start_s) for s in boris.spans} == {
        (f"{g['code']} {g['name']}", round(g["start_s"], 3)) for g in doc["segments"]}

    _edit_as_a_coder(out)
    before = pympi.Elan.Eaf(str(out / f"{KEY}.eaf"))
    second = _label(folder, out, golden_weights, "--top-k", "3")  # another option: the video is redone
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stderr.count("kept edits:") == 3, second.stderr[-3000:]
    after = pympi.Elan.Eaf(str(out / f"{KEY}.eaf"))
    for tier in ("micro-action", "coder notes"):
        assert sorted(after.get_annotation_data_for_tier(tier)) == sorted(before.get_annotation_data_for_tier(tier))
    assert "micro-action (machine)" in after.tiers and REVIEW_TIER in after.tiers
    assert any(r["name"] == "nodding" and r["start_s"] == "2.0" for r in _rows(out / f"{KEY}.events.csv"))
    redone = json.loads((out / f"{KEY}.labels.json").read_text())
    assert redone["job"]["labels"]["top_k"] == 3 and len(redone["kept_edits"]) == 2

    (folder / CLIP).write_bytes((VIDEOS_DIR / CLIP).read_bytes()[:4000])  # the video breaks: the rerun fails
    third = _label(folder, out, golden_weights, "--top-k", "3")
    assert third.returncode == 1 and "failed [" in third.stderr
    assert (out / f"{KEY}.failed.json").is_file() and not (out / f"{KEY}.labels.json").exists()
    kept = pympi.Elan.Eaf(str(out / f"{KEY}.eaf"))  # the coder's files stay
    assert sorted(kept.get_annotation_data_for_tier("coder notes")) == [(100, 900, "checked")]
    assert (out / f"{KEY}.events.csv").is_file() and machine_copy(out / f"{KEY}.eaf").is_file()
