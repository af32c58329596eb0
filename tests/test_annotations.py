"""Annotation tools: KEY.events.csv and KEY.eaf export (ELAN), and ELAN / CSV spans imported
into a pyskl training dataset (pipelines.formats.events, pipelines.formats.elan, pipelines.formats.spans,
pipelines.dataset_builder, pipelines.build_dataset)."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from core.safe_pickle import load_data_pickle
from mmn.training.datasets import read_pyskl
from pipelines import build_dataset as build_cli
from pipelines import video_to_labels
from pipelines.dataset_builder import (
    BuildOptions,
    DatasetBuildError,
    build_training_set,
    report_path,
    skeleton_folder,
    split_videos,
    window_label,
)
from pipelines.evaluation.review import REVIEW_TIER
from pipelines.formats.elan import (
    MOTION_LEVELS,
    TIER_ACTION,
    TIER_ACTION_PROB,
    TIER_NOTE,
    TIER_TOP1,
    TIER_WHOLE_BODY,
    body_tier,
    linked_video,
    motion_tier,
    read_eaf_spans,
    write_eaf,
)
from pipelines.formats.events import EVENTS_COLUMNS, events_csv_text
from pipelines.formats.spans import AnnotationError, Span, check_spans, read_csv_spans
from pipelines.stages.windowing import Window, WindowOptions
from tests.data import LABELS_SCHEMA, VIDEOS_DIR

SCHEMA = json.loads(LABELS_SCHEMA.read_text())
CLIPS = ("0010_02_0101", "0030_01_0002")  # 47 frames (1.57 s) and 75 frames (2.5 s), 30 fps


def pympi_eaf(path: Path):
    import warnings

    from pympi.Elan import Eaf

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a version or schema complaint is a failure
        return Eaf(str(path))


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- export, real clips


EXPORT_OPTIONS = ["--elan", "--window", "0.5", "--stride", "0.25", "--device", "cpu"]


@pytest.fixture(scope="module")
def exported_motion(tmp_path_factory) -> dict[str, Path]:
    """Two real clips through the folder job with --elan and no checkpoint (skeletons, motion
    tiers): ``{"motion": dir, "inputs": dir}``."""
    inputs = tmp_path_factory.mktemp("videos")
    for key in CLIPS:
        shutil.copy(VIDEOS_DIR / f"{key}.mp4", inputs / f"{key}.mp4")
    motion = tmp_path_factory.mktemp("motion")
    assert video_to_labels.main([str(inputs), "--out", str(motion), *EXPORT_OPTIONS]) == 0
    return {"motion": motion, "inputs": inputs}


@pytest.fixture(scope="module")
def exported(exported_motion, golden_weights, tmp_path_factory) -> dict[str, Path]:
    """The same clips again with the golden checkpoint, reusing the skeletons: adds ``"labels": dir``."""
    labels = tmp_path_factory.mktemp("labels")
    for key in CLIPS:
        shutil.copy(exported_motion["motion"] / f"{key}.skeleton.h5", labels / f"{key}.skeleton.h5")
    assert video_to_labels.main([str(exported_motion["inputs"]), "--out", str(labels), "--weights",
                                 str(golden_weights), *EXPORT_OPTIONS]) == 0
    return {**exported_motion, "labels": labels}


@pytest.mark.parametrize("key", CLIPS)
def test_eaf_with_labels_opens_in_pympi_with_the_tiers(exported, key):
    out = exported["labels"]
    doc = json.loads((out / f"{key}.labels.json").read_text())
    jsonschema.validate(doc, SCHEMA)
    assert doc["outputs"]["eaf"] == f"{key}.eaf" and doc["outputs"]["events_csv"] == f"{key}.events.csv"
    assert doc["job"]["outputs"]["elan"] is True
    eaf = pympi_eaf(out / f"{key}.eaf")
    levels = doc["model"]["taxonomy"]["body_levels"]
    assert len(levels) == 7  # MA-52's, read from the document
    assert list(eaf.get_tier_names()) == ([TIER_ACTION, TIER_ACTION_PROB] + [body_tier(c, n) for c, n in levels]
                                          + [TIER_TOP1, REVIEW_TIER])
    marks = eaf.get_annotation_data_for_tier(REVIEW_TIER)  # the least certain windows, overlapping ones merged
    assert 1 <= len(marks) <= sum("top_k" in w for w in doc["windows"]) and all(v.startswith("margin ")
                                                                                 for _, _, v in marks)
    md = eaf.media_descriptors[0]
    video = exported["inputs"] / f"{key}.mp4"
    assert md["MEDIA_URL"] == "file://" + str(video.resolve()) and md["MIME_TYPE"] == "video/mp4"
    assert (out / md["RELATIVE_MEDIA_URL"]).resolve() == video.resolve()
    assert linked_video(out / f"{key}.eaf") == video.resolve()
    fps = doc["video"]["fps"]
    segments = sorted(doc["segments"], key=lambda s: s["start_frame"])
    assert segments, "the golden checkpoint labels every clip"
    got = sorted(eaf.get_annotation_data_for_tier(TIER_ACTION))
    assert [v for _, _, v in got] == [f"{s['code']} {s['name']}" for s in segments]
    for (start_ms, end_ms, _), seg in zip(got, segments):
        assert abs(start_ms / 1000 - seg["start_s"]) <= 1 / fps and abs(end_ms / 1000 - seg["end_s"]) <= 1 / fps
    probs = eaf.get_annotation_data_for_tier(TIER_ACTION_PROB)
    assert [p[2] for p in sorted(probs)] == [f"{s['mean_prob']:.3f}" for s in segments]
    for code, name in levels:  # each body level holds exactly its segments
        mine = [f"{s['code']} {s['name']}" for s in segments if s["body_code"] == code]
        assert [v for _, _, v in sorted(eaf.get_annotation_data_for_tier(body_tier(code, name)))] == mine
    top = sorted(eaf.get_annotation_data_for_tier(TIER_TOP1))
    assert len(top) == len(doc["windows"]) and top[0][0] == 0
    assert all(a[1] == b[0] for a, b in zip(top, top[1:]))  # window k on [start_k, start_k+1): no overlaps
    first = doc["windows"][0]["top_k"][0]
    assert top[0][2] == f"{first['code']} {first['name']} (p={first['prob']:.2f})"
    cv = eaf.controlled_vocabularies["micro-actions"][1]
    assert len(cv) == 52  # every MA-52 class: a correction is a pick from the list


@pytest.mark.parametrize("key", CLIPS)
def test_events_csv_matches_the_segments(exported, key):
    out = exported["labels"]
    doc = json.loads((out / f"{key}.labels.json").read_text())
    table = rows(out / f"{key}.events.csv")
    assert tuple(table[0].keys()) == EVENTS_COLUMNS
    segments = sorted(doc["segments"], key=lambda s: s["start_frame"])
    assert len(table) == len(segments)
    for row, seg in zip(table, segments):
        assert row["video"] == f"{key}.mp4" and int(row["class_index"]) == seg["class_index"]
        assert float(row["start_s"]) == seg["start_s"] and float(row["stop_s"]) == seg["end_s"]
        assert float(row["duration_s"]) == pytest.approx(seg["end_s"] - seg["start_s"], abs=1e-4)
        assert (row["code"], row["name"], row["body_code"], row["body_level"]) == \
            (seg["code"], seg["name"], seg["body_code"], seg["body"])
        assert float(row["mean_prob"]) == pytest.approx(seg["mean_prob"], abs=1e-4)


@pytest.mark.parametrize("key", CLIPS)
def test_without_weights_motion_tiers_and_a_header_only_events_csv(exported_motion, key):
    from core.layouts import MA52_44

    out = exported_motion["motion"]
    doc = json.loads((out / f"{key}.labels.json").read_text())
    jsonschema.validate(doc, SCHEMA)
    assert doc["model"] is None
    eaf = pympi_eaf(out / f"{key}.eaf")
    names = list(eaf.get_tier_names())
    assert names == [TIER_NOTE] + [motion_tier(p) for p, _ in MA52_44.parts] + [TIER_WHOLE_BODY]
    assert not any(n.startswith("body-level") or n in (TIER_ACTION, TIER_TOP1) for n in names)
    levels = {name for _, name in MOTION_LEVELS}
    duration_ms = round(doc["video"]["frame_count"] / doc["video"]["fps"] * 1000)
    for name in names:
        data = sorted(eaf.get_annotation_data_for_tier(name))
        assert data, f"tier {name!r} is empty"
        if name != TIER_NOTE:
            assert {v for _, _, v in data} <= levels
            assert all(a[1] <= b[0] for a, b in zip(data, data[1:]))
            assert data[-1][1] == duration_ms and data[0][0] == 0
    assert eaf.get_annotation_data_for_tier(TIER_NOTE)[0][2] == doc["labels_absent_reason"]
    assert (out / f"{key}.events.csv").read_text() == ",".join(EVENTS_COLUMNS) + "\n"


def test_the_app_offers_both_files_without_server_paths(tmp_path):
    from app.config import AppConfig
    from app.engine import Settings, analyse
    from app.validate import Limits, check_upload

    up = tmp_path / "uploads"
    up.mkdir()
    clip = up / "0010_02_0101.mp4"
    shutil.copy(VIDEOS_DIR / clip.name, clip)
    (tmp_path / "work").mkdir()
    a = analyse(check_upload(clip, Limits(50 << 20, 60), [up]), Settings(window_s=1.0, stride_s=0.5), None,
                AppConfig(), tmp_path / "work")
    assert a.outputs.eaf.is_file() and a.outputs.events.is_file()
    for path in (a.outputs.eaf, a.outputs.events):
        assert str(up) not in path.read_text() and str(tmp_path) not in path.read_text()
    md = pympi_eaf(a.outputs.eaf).media_descriptors[0]
    assert md["RELATIVE_MEDIA_URL"] == "./0010_02_0101.mp4"  # found beside the downloaded .eaf


# --------------------------------------------------------------------------- export, other taxonomies


def small_doc(with_codes: bool, body_levels: list[list[str]] | None) -> dict:
    """A labels document of a lab's own 3-class scheme (60 frames at 30 fps)."""
    classes = [("fidget", "F1", 0), ("gaze away", "G1", 1), ("nod", "N1", 1)]
    windows = []
    for i, s in enumerate(range(0, 45, 15)):
        c = classes[i % 3]
        top = {"index": i % 3, "name": c[0], "prob": 0.9}
        if with_codes:
            top["code"] = c[1]
        windows.append({"index": i, "start_frame": s, "end_frame": s + 30, "start_s": s / 30,
                        "end_s": (s + 30) / 30, "joint_heat": [0.0] * 44, "top_k": [top]})
    seg = {"class_index": 0, "name": "fidget", "start_frame": 0, "end_frame": 30, "start_s": 0.0, "end_s": 1.0,
           "mean_prob": 0.9, "windows": [0]}
    if with_codes:
        seg["code"] = "F1"
    if body_levels:
        seg.update(body=body_levels[0][1], body_code=body_levels[0][0])
    return {"video": {"file_name": "v.mp4", "fps": 30.0, "frame_count": 60}, "pose": {"layout": "ma52_44"},
            "model": {"taxonomy": {"name": "lab_scheme", "num_classes": 3, "body_levels": body_levels}},
            "labels_absent_reason": None, "windows": windows, "segments": [seg], "job": {}}


def test_body_level_tiers_come_from_the_document(tmp_path):
    levels = [["H", "hands"], ["E", "eyes"]]
    path = write_eaf(small_doc(True, levels), tmp_path / "k.eaf", tmp_path / "v.mp4")
    eaf = pympi_eaf(path)
    assert list(eaf.get_tier_names()) == [TIER_ACTION, TIER_ACTION_PROB, "body-level H hands", "body-level E eyes",
                                          TIER_TOP1]
    assert eaf.get_annotation_data_for_tier("body-level H hands") == [(0, 1000, "F1 fidget")]
    assert eaf.get_annotation_data_for_tier("body-level E eyes") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.eaf"]  # atomic: no temporary or .bak file left


def test_without_codes_or_body_levels_values_are_names(tmp_path):
    doc = small_doc(False, None)
    eaf = pympi_eaf(write_eaf(doc, tmp_path / "k.eaf", tmp_path / "v.mp4"))
    assert list(eaf.get_tier_names()) == [TIER_ACTION, TIER_ACTION_PROB, TIER_TOP1]
    assert eaf.get_annotation_data_for_tier(TIER_ACTION) == [(0, 1000, "fidget")]
    assert sorted(eaf.get_annotation_data_for_tier(TIER_TOP1))[1][2] == "gaze away (p=0.90)"
    table = list(csv.DictReader(events_csv_text(doc).splitlines()))
    assert [(r["code"], r["name"], r["body_level"], r["start_s"], r["stop_s"]) for r in table] == \
        [("", "fidget", "", "0.0", "1.0")]


# --------------------------------------------------------------------------- import: ELAN files

# An ELAN 6 file as ELAN itself writes it (EAF 3.0): participant and annotator attributes, a
# controlled vocabulary, an alignable tier whose middle boundary is an unaligned time slot, a
# Symbolic_Association reference tier, ELAN's four constraint declarations. The media link is
# absolute on another machine; the relative link is what finds the video.
ELAN_EAF = """<?xml version="1.0" encoding="UTF-8"?>
<ANNOTATION_DOCUMENT AUTHOR="" DATE="2024-03-05T14:21:09+01:00" FORMAT="3.0" VERSION="3.0" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="http://www.mpi.nl/tools/elan/EAFv3.0.xsd">
    <HEADER MEDIA_FILE="" TIME_UNITS="milliseconds">
        <MEDIA_DESCRIPTOR MEDIA_URL="file:///C:/Users/lab/Interviews/{video}" MIME_TYPE="video/mp4" \
RELATIVE_MEDIA_URL="./{video}"/>
        <PROPERTY NAME="URN">urn:nl-mpi-tools-elan-eaf:0b1f1f52-4d3c-4d55-a0a4-0d4b6b0bd3f1</PROPERTY>
        <PROPERTY NAME="lastUsedAnnotationId">6</PROPERTY>
    </HEADER>
    <TIME_ORDER>
        <TIME_SLOT TIME_SLOT_ID="ts1" TIME_VALUE="0"/>
        <TIME_SLOT TIME_SLOT_ID="ts2" TIME_VALUE="1200"/>
        <TIME_SLOT TIME_SLOT_ID="ts3"/>
        <TIME_SLOT TIME_SLOT_ID="ts4" TIME_VALUE="2500"/>
    </TIME_ORDER>
    <TIER ANNOTATOR="RA" LINGUISTIC_TYPE_REF="micro-action" PARTICIPANT="interviewee" TIER_ID="Behaviour">
        <ANNOTATION>
            <ALIGNABLE_ANNOTATION ANNOTATION_ID="a1" CVE_REF="cveid_1" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts2">
                <ANNOTATION_VALUE>shaking body</ANNOTATION_VALUE>
            </ALIGNABLE_ANNOTATION>
        </ANNOTATION>
        <ANNOTATION>
            <ALIGNABLE_ANNOTATION ANNOTATION_ID="a2" CVE_REF="cveid_2" TIME_SLOT_REF1="ts2" TIME_SLOT_REF2="ts3">
                <ANNOTATION_VALUE>sitting straight</ANNOTATION_VALUE>
            </ALIGNABLE_ANNOTATION>
        </ANNOTATION>
        <ANNOTATION>
            <ALIGNABLE_ANNOTATION ANNOTATION_ID="a3" CVE_REF="cveid_2" TIME_SLOT_REF1="ts3" TIME_SLOT_REF2="ts4">
                <ANNOTATION_VALUE>sitting straight</ANNOTATION_VALUE>
            </ALIGNABLE_ANNOTATION>
        </ANNOTATION>
    </TIER>
    <TIER LINGUISTIC_TYPE_REF="comment" PARENT_REF="Behaviour" PARTICIPANT="interviewee" TIER_ID="Certainty">
        <ANNOTATION>
            <REF_ANNOTATION ANNOTATION_ID="a4" ANNOTATION_REF="a1">
                <ANNOTATION_VALUE>sure</ANNOTATION_VALUE>
            </REF_ANNOTATION>
        </ANNOTATION>
        <ANNOTATION>
            <REF_ANNOTATION ANNOTATION_ID="a5" ANNOTATION_REF="a3">
                <ANNOTATION_VALUE>unsure</ANNOTATION_VALUE>
            </REF_ANNOTATION>
        </ANNOTATION>
    </TIER>
    <TIER LINGUISTIC_TYPE_REF="default-lt" TIER_ID="notes"/>
    <LINGUISTIC_TYPE CONTROLLED_VOCABULARY_REF="micro-actions" GRAPHIC_REFERENCES="false" \
LINGUISTIC_TYPE_ID="micro-action" TIME_ALIGNABLE="true"/>
    <LINGUISTIC_TYPE CONSTRAINTS="Symbolic_Association" GRAPHIC_REFERENCES="false" LINGUISTIC_TYPE_ID="comment" \
TIME_ALIGNABLE="false"/>
    <LINGUISTIC_TYPE GRAPHIC_REFERENCES="false" LINGUISTIC_TYPE_ID="default-lt" TIME_ALIGNABLE="true"/>
    <LANGUAGE LANG_DEF="http://cdb.iso.org/lg/CDB-00130975-001" LANG_ID="und" LANG_LABEL="undetermined (und)"/>
    <CONSTRAINT DESCRIPTION="Time subdivision of parent annotation's time interval, no time gaps allowed within \
this interval" STEREOTYPE="Time_Subdivision"/>
    <CONSTRAINT DESCRIPTION="Symbolic subdivision of a parent annotation. Annotations refering to the same parent \
are ordered" STEREOTYPE="Symbolic_Subdivision"/>
    <CONSTRAINT DESCRIPTION="1-1 association with a parent annotation" STEREOTYPE="Symbolic_Association"/>
    <CONSTRAINT DESCRIPTION="Time alignable annotations within the parent annotation's time interval, gaps are \
allowed" STEREOTYPE="Included_In"/>
    <CONTROLLED_VOCABULARY CV_ID="micro-actions">
        <DESCRIPTION LANG_REF="und">the lab's coding scheme</DESCRIPTION>
        <CV_ENTRY_ML CVE_ID="cveid_1">
            <CVE_VALUE LANG_REF="und">shaking body</CVE_VALUE>
        </CV_ENTRY_ML>
        <CV_ENTRY_ML CVE_ID="cveid_2">
            <CVE_VALUE LANG_REF="und">sitting straight</CVE_VALUE>
        </CV_ENTRY_ML>
    </CONTROLLED_VOCABULARY>
</ANNOTATION_DOCUMENT>
"""


def elan_file(folder: Path, text: str = ELAN_EAF, video: str = "0030_01_0002.mp4", name: str = "interview.eaf",
              copy_video: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if copy_video:
        shutil.copy(VIDEOS_DIR / video, folder / video)
    path = folder / name
    path.write_text(text.replace("{video}", video), encoding="utf-8")
    return path


def test_elan_file_spans_unaligned_slots_and_reference_tiers(tmp_path):
    path = elan_file(tmp_path, copy_video=False)
    spans = read_eaf_spans(path, "Behaviour")
    assert [(s.start_s, s.end_s, s.label, s.interpolated) for s in spans] == [
        (0.0, 1.2, "shaking body", False), (1.2, 1.85, "sitting straight", True),
        (1.85, 2.5, "sitting straight", True)]  # ts3 placed midway, as ELAN shows it
    assert spans[0].source == f"{path}:16: annotation a1 (tier 'Behaviour')"
    assert [(s.start_s, s.end_s, s.label) for s in read_eaf_spans(path, "Certainty")] == [
        (0.0, 1.2, "sure"), (1.85, 2.5, "unsure")]
    with pytest.raises(AnnotationError, match=r"interview\.eaf: 2 tiers have annotations; choose one with --tier "
                                              r"NAME\. Tiers: 'Behaviour' \(3 annotations\), 'Certainty' \(2 "
                                              r"annotations\), 'notes' \(0 annotations\)"):
        read_eaf_spans(path)
    assert read_eaf_spans(path, "notes") == []
    # the linked path is another machine's: found by the relative link, or in --videos by name
    assert linked_video(path) is None
    assert linked_video(path, VIDEOS_DIR) == VIDEOS_DIR / "0030_01_0002.mp4"
    shutil.copy(VIDEOS_DIR / "0030_01_0002.mp4", tmp_path / "0030_01_0002.mp4")
    assert linked_video(path) == tmp_path / "./0030_01_0002.mp4"


MALFORMED = {
    "broken XML": (lambda t: t[: t.index("</TIER>")], r"bad\.eaf:\d+:\d+: not well-formed XML"),
    "not ELAN": (lambda t: "<html>\n<body/></html>\n", r"bad\.eaf:1: the root element is <html>"),
    "missing time slot": (lambda t: t.replace('TIME_SLOT_REF2="ts2"', 'TIME_SLOT_REF2="ts9"'),
                          r"bad\.eaf:16: annotation a1 \(tier 'Behaviour'\) refers to time slot 'ts9', which "
                          r"TIME_ORDER does not define"),
    "time in frames": (lambda t: t.replace('TIME_VALUE="1200"', 'TIME_VALUE="1200.5"'),
                       r"bad\.eaf:10: time slot 'ts2' has TIME_VALUE='1200\.5', not whole milliseconds"),
    "empty value": (lambda t: t.replace("<ANNOTATION_VALUE>shaking body</ANNOTATION_VALUE>",
                                        "<ANNOTATION_VALUE></ANNOTATION_VALUE>"),
                    r"bad\.eaf:16: annotation a1 \(tier 'Behaviour'\) has an empty value"),
    "reversed": (lambda t: t.replace('TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts2"',
                                     'TIME_SLOT_REF1="ts2" TIME_SLOT_REF2="ts1"'),
                 r"bad\.eaf:16: annotation a1 \(tier 'Behaviour'\): ends at 0\.000 s, not after its start 1\.200 s"),
    "dangling reference": (lambda t: t.replace('ANNOTATION_REF="a3"', 'ANNOTATION_REF="a42"'),
                           r"bad\.eaf:\d+: annotation a5 \(tier 'Certainty'\) refers to annotation 'a42', which "
                           r"does not exist"),
    "doctype": (lambda t: t.replace("<ANNOTATION_DOCUMENT", '<!DOCTYPE x [<!ENTITY a "b">]>\n<ANNOTATION_DOCUMENT',
                                    1), r"bad\.eaf:2: has a DOCTYPE"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_elan_files_name_file_line_and_annotation(tmp_path, case):
    make, pattern = MALFORMED[case]
    path = tmp_path / "bad.eaf"
    path.write_text(make(ELAN_EAF.replace("{video}", "v.mp4")), encoding="utf-8")
    tier = "Certainty" if case == "dangling reference" else "Behaviour"
    with pytest.raises(AnnotationError, match=pattern):
        read_eaf_spans(path, tier)


def test_unknown_tier_lists_the_tiers(tmp_path):
    path = elan_file(tmp_path, copy_video=False)
    with pytest.raises(AnnotationError, match=r"interview\.eaf: no tier 'behaviour'; its tiers: 'Behaviour' \(3 "
                                              r"annotations\)"):
        read_eaf_spans(path, "behaviour")


# --------------------------------------------------------------------------- import: CSV and rules


def test_csv_spans_and_every_bad_row_named(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("\ufeffvideo,start_s,end_s,label,coder\nclip.mp4,0.5,1.25,nod,RA\n\n"
                    "clip.mp4,2,3,\"shake, head\",RA\n", encoding="utf-8")
    assert [(s.video, s.start_s, s.end_s, s.label, s.source) for s in read_csv_spans(good)] == [
        ("clip.mp4", 0.5, 1.25, "nod", f"{good}:2"), ("clip.mp4", 2.0, 3.0, "shake, head", f"{good}:4")]
    bad = tmp_path / "bad.csv"
    bad.write_text("video,start_s,end_s,label\nv.mp4,abc,1,nod\nv.mp4,2,1,nod\nv.mp4,0;5,1,nod\n,0,1,\n"
                   "v.mp4,-1,2,x\nv.mp4,1\nv.mp4,0,1,ok\n")
    with pytest.raises(AnnotationError) as e:
        read_csv_spans(bad)
    msg = str(e.value)
    assert msg.startswith(f"6 bad row(s) in {bad}")
    for part in ("bad.csv:2: start_s and end_s must be numbers of seconds", "bad.csv:3: end 1 s is not after start 2 s",
                 "bad.csv:4: start_s and end_s must be numbers", "bad.csv:5: empty video; empty label",
                 "bad.csv:6: negative start -1 s", "bad.csv:7: 2 field(s), the header has 4"):
        assert part in msg, part
    missing = tmp_path / "missing.csv"
    missing.write_text("file,begin,end_s,label\nv.mp4,0,1,x\n")
    with pytest.raises(AnnotationError, match=r"missing\.csv:1: the header 'file,begin,end_s,label' lacks the "
                                              r"column\(s\) video, start_s; expected video,start_s,end_s,label"):
        read_csv_spans(missing)


def test_events_csv_reads_back_as_spans(tmp_path):
    doc = small_doc(True, None)
    path = tmp_path / "k.events.csv"
    path.write_text(events_csv_text(doc))
    assert [(s.video, s.start_s, s.end_s, s.label) for s in read_csv_spans(path)] == [("v.mp4", 0.0, 1.0, "F1 fidget")]


def test_span_rules_end_of_video_and_overlaps():
    fps = 30.0
    # past the end: clipped within one frame, an error beyond
    assert check_spans([Span(1, 10.03, "p", "f.csv:2")], 10, fps)[0].end_s == 10
    with pytest.raises(AnnotationError, match=r"f\.csv:2: span 1\.000-10\.500 s ends 0\.500 s after the end of the "
                                              r"video \(10\.000 s\)"):
        check_spans([Span(1, 10.5, "p", "f.csv:2")], 10, fps)
    with pytest.raises(AnnotationError, match=r"f\.csv:7: span 12\.000-13\.000 s starts at or after the end"):
        check_spans([Span(12, 13, "p", "f.csv:7")], 10, fps)
    # same label overlapping or touching: merged; different labels touching: fine
    merged = check_spans([Span(0, 1, "p", "f:2"), Span(0.5, 1.5, "p", "f:3"), Span(1.5, 2, "p", "f:4"),
                          Span(2, 3, "q", "f:5")], 10, fps)
    assert [(m.start_s, m.end_s, m.label, m.source) for m in merged] == [(0, 2, "p", "f:2 + f:3 + f:4"),
                                                                          (2, 3, "q", "f:5")]
    with pytest.raises(AnnotationError, match=r"overlapping spans with different labels: f:2 \('p' 0\.000-1\.000 s\) "
                                              r"and f:3 \('q' 0\.500-1\.500 s\)"):
        check_spans([Span(0, 1, "p", "f:2"), Span(0.5, 1.5, "q", "f:3")], 10, fps)


def test_window_majority_rule_and_split():
    spans = [Span(1.0, 3.0, "nod", "s"), Span(3.0, 4.0, "shake", "s")]
    fps = 10.0
    wins = [Window(0, 0, 20), Window(1, 5, 25), Window(2, 26, 46), Window(3, 29, 39)]
    # (0-2 s): exactly half inside "nod" is not more than half; (0.5-2.5): 1.5 s of 2; (2.6-4.6): 0.4 + 1.0 of 2
    assert [window_label(w, fps, spans) for w in wins] == [None, 0, None, 1]
    train, val, notes = split_videos(["a", "b", "c", "d", "e"], 0.2, seed=3)
    assert (train, val) == split_videos(["e", "d", "c", "b", "a"], 0.2, seed=3)[:2]  # deterministic
    assert len(val) == 1 and sorted(train + val) == ["a", "b", "c", "d", "e"] and not notes
    assert split_videos(["a"], 0.2, 0)[:2] == (["a"], []) and "val is empty" in split_videos(["a"], 0.2, 0)[2][0]
    train, val, notes = split_videos(["a", "b"], 0.9, 0)
    assert len(train) == 1 and len(val) == 1 and notes


# --------------------------------------------------------------------------- import: real clips


def seeded(out: Path, exported_motion: dict[str, Path]) -> Path:
    """Put the skeletons the export made into the dataset's cache (same video bytes, same pose
    options: reused as they are, no pose run)."""
    cache = skeleton_folder(out)
    cache.mkdir(parents=True, exist_ok=True)
    for key in CLIPS:
        shutil.copy(exported_motion["motion"] / f"{key}.skeleton.h5", cache / f"{key}.skeleton.h5")
    return out


def test_dataset_from_an_elan_file_and_a_csv(tmp_path, exported_motion, capsys):
    eaf = elan_file(tmp_path / "coded")
    table = tmp_path / "coded" / "more.csv"
    table.write_text("video,start_s,end_s,label\n0010_02_0101.mp4,0.0,0.9,turning head\n"
                     "0010_02_0101.mp4,0.9,1.5,sitting straight\n0010_02_0101.mp4,1.5,1.55,blink\n"
                     "elsewhere.mp4,0,1,nod\n")
    out = seeded(tmp_path / "data" / "data.pkl", exported_motion)
    mtimes = {p.name: p.stat().st_mtime_ns for p in skeleton_folder(out).iterdir()}
    code = build_cli.main([str(eaf), str(table), "--tier", "Behaviour", "--videos", str(VIDEOS_DIR), "--out",
                           str(out), "--window", "0.5", "--stride", "0.25", "--val-fraction", "0.5", "--seed", "0"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert {p.name: p.stat().st_mtime_ns for p in skeleton_folder(out).iterdir()} == mtimes  # reused
    data = load_data_pickle(out)  # the project's allow-listed unpickler: only plain data
    assert set(data) == {"split", "annotations", "label_names"}
    assert data["label_names"] == ["shaking body", "sitting straight", "turning head"]
    train, names = read_pyskl(out, "train")
    val, _ = read_pyskl(out, "val")
    assert names == data["label_names"] and train and val
    videos = {s: {a["video"] for a in data["annotations"] if a["frame_dir"] in set(data["split"][s])}
              for s in ("train", "val")}
    assert len(videos["train"]) == len(videos["val"]) == 1 and not videos["train"] & videos["val"]
    for a in data["annotations"]:
        t = a["end_frame"] - a["start_frame"]
        assert a["keypoint"].shape == (1, t, 44, 2) and a["keypoint"].dtype == np.float32
        assert a["keypoint_score"].shape == (1, t, 44) and np.isfinite(a["keypoint"]).all()
        assert a["total_frames"] == t and a["img_shape"] == (1296, 1080)
        start, end = a["start_frame"] / 30, a["end_frame"] / 30  # the majority rule, checked on the times
        label = data["label_names"][a["label"]]
        spans = {"0030_01_0002": [(0, 1.2, "shaking body"), (1.2, 2.5, "sitting straight")],
                 "0010_02_0101": [(0, 0.9, "turning head"), (0.9, 1.5, "sitting straight")]}[a["video"]]
        assert any(lab == label and min(end, e) - max(start, s) > (end - start) / 2 for s, e, lab in spans)
    # a window over ELAN's seam between the two "sitting straight" annotations (1.85 s) is kept: merged spans
    assert any(a["video"] == "0030_01_0002" and a["start_frame"] < 1.85 * 30 < a["end_frame"]
               and data["label_names"][a["label"]] == "sitting straight" for a in data["annotations"])
    report = json.loads(report_path(out).read_text())
    assert report["skipped"]["videos"] == [{"video": "elsewhere.mp4", "source": f"{table}:5",
                                            "reason": f"no such video (1 span(s)); looked in {VIDEOS_DIR} and "
                                                      f"beside more.csv"}]
    assert [(s["source"], s["label"]) for s in report["skipped"]["spans"]] == [(f"{table}:4", "blink")]
    assert "shorter than a window" in report["skipped"]["spans"][0]["reason"]
    assert report["counts"]["train_windows"] + report["counts"]["val_windows"] == len(data["annotations"])
    assert "skipped video elsewhere.mp4" in err and "skipped span" in err and f"wrote {out}" in err


def test_background_class_and_dropped_labels(tmp_path, exported_motion):
    table = tmp_path / "spans.csv"
    table.write_text("video,start_s,end_s,label\n0030_01_0002.mp4,0.5,1.5,shaking body\n"
                     "0030_01_0002.mp4,2.2,2.5,rare\n")
    out = seeded(tmp_path / "bg.pkl", exported_motion)
    report = build_training_set([table], BuildOptions(out=out, videos_dir=VIDEOS_DIR,
                                                      windows=WindowOptions(window=0.5, stride=0.25),
                                                      background="none", val_fraction=0.2))
    assert report.label_names == ["none", "shaking body"]
    assert report.data["skipped"]["labels"] == [{"label": "rare", "windows": 1,
                                                 "reason": "1 window(s), fewer than 2"}]
    assert report.data["notes"] and "val is empty" in report.data["notes"][0]  # a single video: all in train
    clips, _ = read_pyskl(out, "train")
    assert len(clips) == report.data["counts"]["train_windows"] > 0
    with pytest.raises(DatasetBuildError, match="no labelled window is left"):
        build_training_set([table], BuildOptions(out=tmp_path / "none.pkl", videos_dir=VIDEOS_DIR,
                                                 windows=WindowOptions(window=2.0, stride=0.5)))


def test_malformed_input_exits_2_naming_the_file(tmp_path, exported_motion, capsys):
    out = seeded(tmp_path / "x.pkl", exported_motion)
    common = ["--videos", str(VIDEOS_DIR), "--out", str(out), "--window", "0.5", "--stride", "0.25"]
    past = tmp_path / "past.csv"  # the clip is 2.5 s long
    past.write_text("video,start_s,end_s,label\n0030_01_0002.mp4,2.0,2.9,nod\n")
    assert build_cli.main([str(past), *common]) == 2
    assert f"{past}:2: span 2.000-2.900 s ends 0.400 s after the end of" in capsys.readouterr().err
    within = tmp_path / "within.csv"  # less than a frame past the end: clipped
    within.write_text("video,start_s,end_s,label\n0030_01_0002.mp4,0.0,2.52,sitting\n")
    assert build_cli.main([str(within), *common]) == 0
    capsys.readouterr()
    overlap = elan_file(tmp_path / "o", ELAN_EAF.replace('TIME_SLOT_REF1="ts2" TIME_SLOT_REF2="ts3"',
                                                         'TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts3"'), copy_video=False)
    assert build_cli.main([str(overlap), "--tier", "Behaviour", *common]) == 2
    err = capsys.readouterr().err
    assert (f"overlapping spans with different labels: {overlap}:16: annotation a1 (tier 'Behaviour') "
            f"('shaking body' 0.000-1.200 s) and {overlap}:21: annotation a2 (tier 'Behaviour')") in err
    broken = tmp_path / "broken.eaf"
    broken.write_text(ELAN_EAF[:900])
    assert build_cli.main([str(broken), *common]) == 2
    assert f"{broken}:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # a usage error
        build_cli.main([str(past), "--out", str(out), "--val-fraction", "1"])
    assert e.value.code == 2
    nothing = tmp_path / "nothing.csv"
    nothing.write_text("video,start_s,end_s,label\nnope.mp4,0,1,x\n")
    assert build_cli.main([str(nothing), *common]) == 1
    assert "no annotated video could be used: nope.mp4: no such video" in capsys.readouterr().err


def test_a_video_the_pose_stage_cannot_use_is_skipped_not_fatal(tmp_path, exported_motion):
    """The builder runs the pipeline's own pose stage (:func:`pipelines.job.skeleton_stage`),
    so a 2×2-pixel video and a video without a person are reported as the folder job reports
    them, and the rest is built."""
    from tests.test_job_robustness import _high_rate_video

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(VIDEOS_DIR / "0030_01_0002.mp4", videos / "0030_01_0002.mp4")
    _high_rate_video(videos / "tiny.mp4", 20, 30, size=(2, 2))
    _high_rate_video(videos / "nobody.mp4", 60, 30, size=(320, 240))
    table = tmp_path / "spans.csv"
    table.write_text("video,start_s,end_s,label\n0030_01_0002.mp4,0.0,2.5,shaking body\n"
                     "tiny.mp4,0.0,0.6,nod\nnobody.mp4,0.0,2.0,nod\n")
    out = seeded(tmp_path / "data.pkl", exported_motion)
    assert build_cli.main([str(table), "--videos", str(videos), "--out", str(out), "--window", "0.5",
                           "--stride", "0.25", "--val-fraction", "0"]) == 0
    skipped = {Path(v["video"]).name: v["reason"] for v in json.loads(report_path(out).read_text())["skipped"]["videos"]}
    assert set(skipped) == {"tiny.mp4", "nobody.mp4"}
    assert all(r.startswith("pose failed: ") and "no person detected" in r for r in skipped.values()), skipped
    assert load_data_pickle(out)["label_names"] == ["shaking body"]
