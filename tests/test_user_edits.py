"""Corrections survive reruns: three-way merges of ELAN files and tables a coder edited.

The ELAN files are made and edited with pympi, as a coder's ELAN would save them.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

pympi = pytest.importorskip("pympi")
from pympi.Elan import Eaf  # noqa: E402

from pipelines.formats.elan import eaf_text  # noqa: E402
from pipelines.formats.elan_merge import merge_eaf  # noqa: E402
from pipelines.formats.spans import AnnotationError  # noqa: E402
from pipelines.formats.user_edits import (  # noqa: E402
    edited_by_user,
    machine_copy,
    merge_csv_rows,
    removable,
    write_keeping_edits,
)


def _machine_eaf(segments: list[tuple[int, int, str]], top1: list[tuple[int, int, str]]) -> str:
    eaf = Eaf()
    eaf.add_linguistic_type("micro-action-lt")
    eaf.add_linguistic_type("probability", constraints="Symbolic_Association", timealignable=False)
    eaf.add_tier("micro-action", ling="micro-action-lt")
    eaf.add_tier("micro-action p", ling="probability", parent="micro-action")
    eaf.add_tier("window top-1")
    for s, e, v in segments:
        eaf.add_annotation("micro-action", s, e, v)
        eaf.add_ref_annotation("micro-action p", "micro-action", (s + e) // 2, "0.800")
    for s, e, v in top1:
        eaf.add_annotation("window top-1", s, e, v)
    eaf.remove_tier("default") if "default" in eaf.tiers else None
    return eaf_text(eaf)


BASE = _machine_eaf([(0, 1000, "A1 shaking body"), (2000, 3000, "B2 nodding")],
                    [(0, 500, "A1 (p=0.9)"), (500, 1000, "A1 (p=0.8)")])
NEW = _machine_eaf([(0, 1200, "A1 shaking body"), (2500, 3000, "B3 shaking head")],
                   [(0, 600, "A1 (p=0.95)")])


def _tiers(path: Path) -> dict[str, list]:
    eaf = Eaf(str(path))
    return {t: sorted(eaf.get_annotation_data_for_tier(t)) for t in eaf.tiers}


def _write_machine(path: Path, text: str) -> None:
    assert write_keeping_edits(path, text, merge_eaf) is None


def test_untouched_file_is_simply_refreshed(tmp_path):
    path = tmp_path / "v.eaf"
    _write_machine(path, BASE)
    assert not edited_by_user(path) and machine_copy(path).read_text() == BASE
    assert write_keeping_edits(path, NEW, merge_eaf) is None
    assert path.read_text() == NEW


def test_coder_edits_survive_and_machine_tiers_are_refreshed_beside(tmp_path):
    path = tmp_path / "v.eaf"
    _write_machine(path, BASE)
    coder = Eaf(str(path))  # a coder corrects one label, adds a tier, deletes the window tier
    aid = next(a for a, (s, e, v, _) in coder.tiers["micro-action"][0].items() if v == "B2 nodding")
    s, e, _, svg = coder.tiers["micro-action"][0][aid]
    coder.tiers["micro-action"][0][aid] = (s, e, "B1 shrugging", svg)
    coder.add_tier("coder notes")
    coder.add_annotation("coder notes", 100, 900, "looks away first")
    coder.remove_tier("window top-1")
    coder.to_file(str(path))
    assert edited_by_user(path)

    report = write_keeping_edits(path, NEW, merge_eaf)
    tiers = _tiers(path)
    assert tiers["micro-action"] == [(0, 1000, "A1 shaking body"), (2000, 3000, "B1 shrugging")]  # the coder's
    assert tiers["micro-action (machine)"] == [(0, 1200, "A1 shaking body"), (2500, 3000, "B3 shaking head")]
    assert tiers["coder notes"] == [(100, 900, "looks away first")]
    assert "window top-1" not in tiers  # deleted by the coder: stays deleted
    assert [a[2] for a in tiers["micro-action p"]] == ["0.800", "0.800"]  # kept with its edited parent
    assert set(report.kept) == {"micro-action", "micro-action p", "coder notes"}
    assert set(report.beside) == {"micro-action (machine)", "micro-action p (machine)"}
    assert tiers["micro-action p (machine)"] == [(0, 1200, "0.800", "A1 shaking body"),
                                                 (2500, 3000, "0.800", "B3 shaking head")]
    assert report.deleted == ("window top-1",) and "edited since the job wrote it" in report.describe()
    assert machine_copy(path).read_text() == NEW

    # a second rerun: the coder's tiers are still theirs; the machine tier beside is refreshed
    newer = _machine_eaf([(0, 900, "A1 shaking body")], [(0, 600, "A1 (p=0.9)")])
    write_keeping_edits(path, newer, merge_eaf)
    tiers = _tiers(path)
    assert tiers["micro-action"] == [(0, 1000, "A1 shaking body"), (2000, 3000, "B1 shrugging")]
    assert tiers["coder notes"] == [(100, 900, "looks away first")]
    assert tiers["micro-action (machine)"] == [(0, 900, "A1 shaking body")]
    assert "micro-action (machine) (machine)" not in tiers


def test_file_without_machine_copy_is_a_persons(tmp_path):
    path = tmp_path / "v.eaf"
    path.write_text(BASE)  # written by someone else: no machine copy
    assert edited_by_user(path) and removable([path]) == []
    write_keeping_edits(path, NEW, merge_eaf)
    tiers = _tiers(path)
    assert tiers["micro-action"] == [(0, 1000, "A1 shaking body"), (2000, 3000, "B2 nodding")]
    assert tiers["micro-action (machine)"] == [(0, 1200, "A1 shaking body"), (2500, 3000, "B3 shaking head")]


def test_broken_edited_file_is_an_error_naming_it_and_is_left_alone(tmp_path):
    path = tmp_path / "v.eaf"
    _write_machine(path, BASE)
    path.write_text(BASE.replace("</ANNOTATION_DOCUMENT>", ""))
    with pytest.raises(AnnotationError, match="v.eaf"):
        write_keeping_edits(path, NEW, merge_eaf)
    assert path.read_text() == BASE.replace("</ANNOTATION_DOCUMENT>", "")


HEADER = "video,start_s,stop_s,duration_s,class_index,code,name,mean_prob\n"


def _table(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_table_rows_a_coder_added_or_changed_survive(tmp_path):
    path = tmp_path / "v.events.csv"
    base = HEADER + "v.mp4,0.0,1.0,1.0,0,A1,shaking body,0.8\nv.mp4,2.0,3.0,1.0,5,B2,nodding,0.7\n" \
                    "v.mp4,4.0,5.0,1.0,5,B2,nodding,0.6\n"
    new = HEADER + "v.mp4,0.0,1.2,1.2,0,A1,shaking body,0.8\nv.mp4,4.0,5.0,1.0,5,B2,nodding,0.6\n"
    assert write_keeping_edits(path, base, merge_csv_rows) is None
    # a spreadsheet re-saves: CRLF, numbers shortened, a row relabelled, a row deleted, a row added
    path.write_text("video,start_s,stop_s,duration_s,class_index,code,name,mean_prob,checked\r\n"
                    "v.mp4,0,1,1,0,A1,shaking body,0.8,\r\n"
                    "v.mp4,2,3,1,7,B4,shrugging,0.7,yes\r\n"
                    "v.mp4,6.5,7,0.5,9,C1,touching nose,,yes\r\n")
    report = write_keeping_edits(path, new, merge_csv_rows)
    rows = _table(path)
    assert [(r["start_s"], r["name"], r["checked"]) for r in rows] == [
        ("0.0", "shaking body", ""),    # machine row refreshed: start 0.0, stop 1.2
        ("2", "shrugging", "yes"),      # the coder's correction, as they wrote it
        ("6.5", "touching nose", "yes")]  # the coder's new row
    assert rows[0]["stop_s"] == "1.2"
    assert len(report.kept) == 2 and len(report.deleted) == 1  # 4.0-5.0 nodding was deleted: not re-added
