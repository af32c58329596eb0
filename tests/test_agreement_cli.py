"""python -m pipelines.agreement end to end: two coders' ELAN files against a hand computation,
BORIS and submission inputs, bad input (exit 2, the file named), and the bundled clips labelled
by the golden checkpoint scored against their labels."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from pipelines.agreement import main
from pipelines.evaluation.detection_ap import TIOU_THRESHOLDS
from pipelines.formats.submission import read_submission
from tests.cli import run_cli
from tests.data import LABELS_SCHEMA, SHARED, shared
from tests.media import coder_eaf

MEDIA = "/data/interview 7.mp4"  # the video both coders' files link


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_two_coders_elan_files_by_hand(tmp_path, capsys):
    """Coder A: nod 0-2 s, shake 2-4 s; coder B: nod 0-1 s, shake 1-4 s, nod 4-5 s. Both link
    'interview 7.mp4' (the files' own stems differ). 10 frames per second, 50 frames."""
    a = coder_eaf(tmp_path / "coder_a.eaf", [(0, 2, "nod"), (2, 4, "shake")], media=MEDIA)
    b = coder_eaf(tmp_path / "coder_b.eaf", [(0, 1, "nod"), (1, 4, "shake"), (4, 5, "nod")], media=MEDIA)
    code, out, err = _run(capsys, b, "--gold", a, "--out", tmp_path / "out", "--fps", "10")
    assert code == 0, err
    doc = json.loads((tmp_path / "out" / "agreement.json").read_text())
    frames = doc["frames"]
    # p_o = 30/50; p_e = .4*.4 (nod) + .4*.6 (shake) + .2*0 (none) = .4 → kappa (.6 - .4) / .6
    assert frames["percent_agreement"] == pytest.approx(60.0)
    assert frames["kappa"] == pytest.approx(1 / 3, abs=1e-6)
    # presence of nod: p_o .6, p_e .4*.4+.6*.6 = .52; of shake: p_o .8, p_e .4*.6+.6*.4 = .48
    assert frames["per_class"]["0"] == {"name": "nod", "kappa": pytest.approx(0.08 / 0.48, abs=1e-6)}
    assert frames["per_class"]["1"] == {"name": "shake", "kappa": pytest.approx(0.32 / 0.52, abs=1e-6)}
    # the classes are the distinct values, sorted; the video is the linked media's stem
    rows = (tmp_path / "out" / "detections.csv").read_text().splitlines()
    assert rows == ["video_id,t_start,t_end,class,score", "interview 7,0.0,1.0,0,1.0", "interview 7,1.0,4.0,1,1.0",
                    "interview 7,4.0,5.0,0,1.0"]
    det = doc["detection"]
    assert det["tiou"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] and "mAP_all_classes" not in det
    # nod: tied scores, so [4,5] (FP) ranks before [0,1] (tIoU 1/2.0001: TP up to 0.4) → AP .5 then 0
    assert det["per_class"]["0"]["ap"] == [0.5] * 4 + [0.0] * 5
    # shake: [1,4] against [2,4]: tIoU 2/3.0001 → TP up to 0.6
    assert det["per_class"]["1"]["ap"] == [1.0] * 6 + [0.0] * 3
    assert det["mAP"] == pytest.approx((0.5 * 4 + 6) / 18, abs=1e-6)
    prf = doc["at_tiou_0.5"]["per_class"]
    assert prf["0"] == {"name": "nod", "precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "detections": 2, "gold": 1}
    assert prf["1"]["precision"] == 1.0 and prf["1"]["recall"] == 1.0
    assert doc["unmatched"] == {"gold": {}, "predictions": {}}
    assert doc["skipped"] == {"videos_without_gold": [], "point_events": 0}
    assert (tmp_path / "out" / "agreement.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "frame kappa 0.333333" in out


def test_submission_against_boris_gold_with_ma52_names(tmp_path, capsys):
    """A submission CSV defaults to MA-52; BORIS gold values match by "code name", code or name in
    any case; a value matching nothing is reported; a point event is counted, not scored."""
    sub = tmp_path / "sub.csv"
    sub.write_text("video_id,t_start,t_end,class,score\nclip,0.0,2.0,9,0.8\nclip,1.0,3.0,0,0.6\n"
                   "clip,5.0,6.0,9,0.9\nother,0.0,1.0,9,0.5\n")
    gold = tmp_path / "gold.tsv"
    header = ("Observation id\tObservation date\tDescription\tObservation type\tSource\tTime offset (s)\t"
              "Coding duration\tMedia duration (s)\tFPS (frame/s)\tSubject\t"
              "Observation duration by subject by observation\tBehavior\tBehavioral category\tBehavior type\t"
              "Start (s)\tStop (s)\tDuration (s)\tMedia file name\tImage index start\tImage index stop\t"
              "Image file path start\tImage file path stop\tComment start\tComment stop")
    rows = [("b1", "STATE", "0.000", "2.000"), ("A1 SHAKING BODY", "STATE", "1.000", "3.000"),
            ("yawning loudly", "STATE", "3.000", "4.000"), ("nodding", "POINT", "4.500", "4.500")]
    gold.write_text("\n".join([header] + [f"o\t2024-03-01 10:00:00\t\tMedia file\tplayer #1:/v/clip.mp4\t0.0\t6\t6\t30\t"
                                         f"No focal subject\t6\t{b}\t\t{t}\t{s}\t{e}\tNA\t/v/clip.mp4\tNA\tNA\tNA\tNA\t\t"
                                         for b, t, s, e in rows]) + "\n")
    code, _, err = _run(capsys, sub, "--gold", gold, "--out", tmp_path / "out", "--taxonomy", "MA52")
    assert code == 0, err
    doc = json.loads((tmp_path / "out" / "agreement.json").read_text())
    assert doc["unmatched"]["gold"] == {"yawning loudly": 1}
    assert doc["skipped"] == {"videos_without_gold": ["other"], "point_events": 1}
    det = doc["detection"]
    # nodding (9): [5,6] .9 is a FP before [0,2] .8 the TP → precision .5 at recall 1
    assert det["per_class"]["9"]["ap"] == [0.5] * 9 and det["per_class"]["0"]["ap"] == [1.0] * 9
    assert det["mAP"] == pytest.approx(0.75)
    # all 52 classes, those without gold counting 0: (0.5 + 1) / 52
    assert det["mAP_all_classes"] == pytest.approx(1.5 / 52, abs=1e-6)
    assert "unmatched gold values (not scored): {\"yawning loudly\": 1}" in err


def _expect_error(capsys, tmp_path, args, *patterns):
    code, _, err = _run(capsys, *args, "--out", tmp_path / "out")
    assert code == 2, err
    for p in patterns:
        assert p in err, err


def test_bad_input_names_the_file_exit_2(tmp_path, capsys):
    a = coder_eaf(tmp_path / "a.eaf", [(0, 2, "nod")], media=MEDIA)
    b = coder_eaf(tmp_path / "b.eaf", [(0, 2, "nod")], media="/data/elsewhere.mp4")
    _expect_error(capsys, tmp_path, [b, "--gold", a], f"{a}: video 'interview 7' has gold but no prediction",
                  "elsewhere")
    _expect_error(capsys, tmp_path, [a, "--gold", a, "--tier", "gestures"], f"{a}: no tier 'gestures'",
                  "'micro-action' (1 annotations)")
    neg = tmp_path / "neg.csv"
    neg.write_text("video,start_s,end_s,label\nv.mp4,-1.0,2.0,nod\n")
    _expect_error(capsys, tmp_path, [a, "--gold", neg], f"{neg}:2: negative start -1 s")
    zero = coder_eaf(tmp_path / "zero.eaf", [(0, 2, "nod")], media=MEDIA)
    text = zero.read_text().replace('TIME_VALUE="2000"', 'TIME_VALUE="0"')
    zero.write_text(text)
    _expect_error(capsys, tmp_path, [a, "--gold", zero], f"{zero}:", "ends at 0.000 s, not after its start 0.000 s")
    for name in ("empty.eaf", "empty.csv", "empty.tsv", "empty.boris"):
        (tmp_path / name).write_text("")
        _expect_error(capsys, tmp_path, [a, "--gold", tmp_path / name], f"{tmp_path / name}")
    (tmp_path / "empty_sub.csv").write_text("")
    _expect_error(capsys, tmp_path, [tmp_path / "empty_sub.csv", "--gold", a], f"{tmp_path / 'empty_sub.csv'}")
    sub = tmp_path / "sub.csv"
    sub.write_text("video_id,t_start,t_end,class,score\ninterview 7,2.0,2.0,9,0.5\n")
    _expect_error(capsys, tmp_path, [sub, "--gold", a], f"{sub}:2: t_end 2 s is not after t_start 2 s")
    _expect_error(capsys, tmp_path, [tmp_path / "none.json", "--gold", a], "none.json")
    _expect_error(capsys, tmp_path, [a, "--gold", a, "--taxonomy", "nope"], "--taxonomy 'nope'")


def _whole_clip_gold(tmp_path: Path, labels_dir: Path) -> Path:
    """Gold from the clips' published labels (the real data's fixtures/videos/labels.tsv): each
    clip's label over the whole clip."""
    table = shared(SHARED / "fixtures" / "videos" / "labels.tsv")
    out = ["video,start_s,end_s,label"]
    for r in csv.DictReader(table.read_text().splitlines(), delimiter="\t"):
        doc = json.loads((labels_dir / (Path(r["file"]).stem + ".labels.json")).read_text())
        out.append(f"{r['file']},0,{doc['video']['duration_s']},{r['code']} {r['action']}")
    (tmp_path / "gold.csv").write_text("\n".join(out) + "\n")
    return tmp_path / "gold.csv"


@pytest.mark.slow
def test_bundled_clips_scored_against_their_labels(labelled, tmp_path):
    """The bundled clips labelled once by the golden checkpoint (conftest's ``labelled`` run)."""
    labels = labelled.out
    gold = _whole_clip_gold(tmp_path, labels)
    done = run_cli("pipelines.agreement", labels, "--gold", gold, "--out", tmp_path / "out", timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "out" / "agreement.json").read_text())
    rows = read_submission(tmp_path / "out" / "detections.csv")
    # detections.csv holds every video's per-class detections, as the labels documents record them
    expected = []
    schema = json.loads(LABELS_SCHEMA.read_text())
    for p in sorted(labels.glob("*.labels.json")):
        d = json.loads(p.read_text())
        jsonschema.validate(d, schema)
        assert d["detections"], p
        expected += [(Path(d["video"]["file_name"]).stem, r["start_s"], r["end_s"], r["class_index"], r["score"])
                     for r in d["detections"]]
    assert sorted((r.video, r.start_s, r.end_s, r.label, r.score) for r in rows) == sorted(expected)
    # each gold class has one clip-long segment: its AP at a threshold is the precision at the first
    # rank where a detection of the class in that clip reaches the threshold (0 if none does)
    gold_rows = list(csv.DictReader(gold.read_text().splitlines()))
    for g in gold_rows:
        cls = {"A1": 0, "B1": 9, "B3": 8}[g["label"].split()[0]]
        stem, g_end = Path(g["video"]).stem, float(g["end_s"])
        ranked = sorted([r for r in rows if r.label == cls], key=lambda r: -r.score)
        ap = []
        for thr in TIOU_THRESHOLDS:
            hit = next((i for i, r in enumerate(ranked) if r.video == stem and
                        (min(r.end_s, g_end) - max(r.start_s, 0.0)) / (max(r.end_s, g_end) - min(r.start_s, 0.0)
                                                                      + 1e-4) >= thr), None)
            ap.append(0.0 if hit is None else 1.0 / (hit + 1))
        assert doc["detection"]["per_class"][str(cls)]["ap"] == pytest.approx(ap, abs=1e-6), g
    gold_classes = sorted({0, 8, 9})
    assert doc["detection"]["mAP"] == pytest.approx(
        np.mean([doc["detection"]["per_class"][str(c)]["ap"] for c in gold_classes]), abs=1e-6)
    assert set(doc["frames"]) == {"kappa", "percent_agreement", "per_class"}
    assert (tmp_path / "out" / "agreement.png").stat().st_size > 1000


def _labels(path: Path, name: str, frames: int, windows: list, detections: list | None) -> Path:
    doc = {"video": {"file_name": name, "fps": 10.0, "frame_count": frames, "duration_s": frames / 10},
           "model": {"taxonomy": {"name": "ma52", "num_classes": 52, "body_levels": None}}, "windows": windows}
    if detections is not None:
        doc["detections"] = detections
    path.write_text(json.dumps(doc))
    return path


def test_labels_documents_old_and_new(tmp_path, capsys):
    """A folder of labels documents: one with ``detections``, one from before them (scored from
    its windows' top-k); gold in ELAN named by "code name"."""
    out = tmp_path / "labels"
    out.mkdir()
    _labels(out / "v1.labels.json", "v1.mp4", 40, [], [
        {"class_index": 9, "name": "nodding", "code": "B1", "start_frame": 0, "end_frame": 20, "start_s": 0.0,
         "end_s": 2.0, "score": 0.8},
        {"class_index": 0, "name": "shaking body", "code": "A1", "start_frame": 10, "end_frame": 40, "start_s": 1.0,
         "end_s": 4.0, "score": 0.3}])
    top = [{"index": 0, "name": "shaking body", "prob": 0.7}, {"index": 9, "name": "nodding", "prob": 0.05}]
    _labels(out / "v2.labels.json", "v2.mp4", 30, [{"index": 0, "start_frame": 0, "end_frame": 20, "top_k": top},
                                                   {"index": 1, "start_frame": 10, "end_frame": 30, "top_k": top}], None)
    g1 = coder_eaf(tmp_path / "g1.eaf", [(0, 2, "B1 nodding"), (1, 4, "A1 shaking body")], media="/v/v1.mp4")
    g2 = coder_eaf(tmp_path / "g2.eaf", [(0, 3, "A1 shaking body")], media="/v/v2.mp4")
    code, _, err = _run(capsys, out, "--gold", g1, g2, "--out", tmp_path / "out")
    assert code == 0, err
    assert (tmp_path / "out" / "detections.csv").read_text().splitlines() == [
        "video_id,t_start,t_end,class,score", "v1,0.0,2.0,9,0.8", "v1,1.0,4.0,0,0.3", "v2,0.0,3.0,0,0.7"]
    doc = json.loads((tmp_path / "out" / "agreement.json").read_text())
    assert doc["detection"]["per_class"]["9"]["ap"] == [1.0] * 9
    assert doc["detection"]["per_class"]["0"]["ap"] == [1.0] * 9
    assert doc["frames"]["kappa"] is not None and doc["unmatched"]["gold"] == {}
    # the frame grid is the documents' own 10 fps: v1 has 40 frames, v2 30
    assert doc["frames"]["per_class"]["9"]["kappa"] == pytest.approx(1.0)
