"""Issue 20, items 1–5 and 7: the holes a hostile probe found, each reproduced.

1. Ray started from the CLI listens on loopback only, even though ``ray`` is imported early.
2. Cells a spreadsheet would evaluate are neutralised in every CSV.
3. Class names with control characters (or CR/LF, or lone surrogates) are refused.
4. Checkpoint metadata cannot size anything before it is checked against the tensors.
5. A class name of megabytes is refused.
7. An unreachable ``--ray-address`` is a usage error within seconds; SIGTERM works like Ctrl-C.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core.csv_table import csv_text, plain_cell, safe_cell
from core.taxonomy import MA52, Taxonomy, TaxonomyError, label_problem
from mmn.checkpoint import CheckpointError, load_official, save_checkpoint
from pipelines.engines.ray import ray_data_installed
from tests.cli import run_cli, start_cli
from tests.data import GOLDEN_WEIGHTS, ROOT, VIDEOS_DIR, shared
from tests.listeners import ListeningSockets

HOSTILE = ['=HYPERLINK("http://x/?"&A1,"click")', "+cmd|' /C calc'!A0", "@SUM(1)", "-2+3", "\tTAB", "=1+1"]


def _cli(module: str, *args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return run_cli(module, *args, env=env, timeout=timeout)


def _project_checkpoint(tmp_path: Path, edit=None, names=None) -> Path:
    """The golden weights as a project checkpoint whose metadata ``edit`` (a function of the
    metadata dict) then changes; ``names`` replaces the 52 class names."""
    model = load_official(shared(GOLDEN_WEIGHTS))
    taxonomy = MA52 if names is None else Taxonomy.from_class_names(names, "hostile")
    path = save_checkpoint(tmp_path / "project.pt", model, taxonomy=taxonomy, layout=model.meta.layout,
                           modality="joint")
    if edit is not None:
        obj = torch.load(path, weights_only=True)
        edit(obj["meta"])
        torch.save(obj, path)
    return path


# --------------------------------------------------------------------------- 2. formula injection


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_cells_are_neutralised_and_read_back(text):
    cell = safe_cell(text)
    assert cell.startswith("'") and plain_cell(cell) == text
    row = next(csv.reader(io.StringIO(csv_text(["h"], [[text]]).splitlines()[1])))
    assert row == [cell]


@pytest.mark.parametrize("value", [-1.5, "-1.5", "+3", "1e-3", 0, "plain", "a=b"])
def test_numbers_and_plain_text_are_left_alone(value):
    assert safe_cell(value) == value and plain_cell(str(value)) == str(value)


def test_one_line_ending():
    assert csv_text(["a", "b"], [[1, 2], [3, 4]]) == "a,b\n1,2\n3,4\n"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_hostile_names_reach_no_csv_as_formulas(tmp_path):
    """A checkpoint with formula class names labels a video whose file name is a formula:
    no cell of any CSV the job writes starts with a formula character."""
    formulas = [h for h in HOSTILE if label_problem(h) is None]  # a tab in a name is refused (item 3)
    names = list(MA52.class_names)
    names[:len(formulas)] = formulas
    ckpt = _project_checkpoint(tmp_path, names=names)
    obj = torch.load(ckpt, weights_only=True)
    obj["state_dict"]["head.bias"][: len(formulas)] += 50.0  # the hostile classes win every window
    torch.save(obj, ckpt)
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(VIDEOS_DIR / "0019_02_0078.mp4", src / '=HYPERLINK("x").mp4')
    out = tmp_path / "out"
    res = _cli("pipelines.video_to_labels", src, "--out", out, "--weights", ckpt, "--device", "cpu", timeout=500)
    assert res.returncode == 0, res.stderr[-2000:]
    tables = sorted(out.glob("*.csv"))
    assert {p.name for p in tables} >= {"windows.csv", "summary.csv", "failures.csv",
                                       '=HYPERLINK("x").events.csv'}
    seen_hostile = 0
    for table in tables:
        for row in csv.reader(io.StringIO(table.read_text())):
            for cell in row:
                assert not cell.startswith(("=", "+", "@", "\t", "\r")), (table.name, cell)
                assert not (cell.startswith("-") and not cell.lstrip("-").replace(".", "").isdigit()), cell
                seen_hostile += cell.startswith("'")
    assert seen_hostile >= 3  # the video name (summary, windows, events) and the class names


# --------------------------------------------------------------------------- 3 and 5. names


@pytest.mark.parametrize("name", ["nod\x00", "\x1b[31mred", "tab\x0bv", "two\r\nlines", "half\ud800", "x" * 10**7])
def test_taxonomy_refuses_names_that_break_files(name):
    with pytest.raises(TaxonomyError, match="refused") as info:
        Taxonomy.from_class_names(["fine", name])
    assert len(str(info.value)) < 400  # a 10 MB name is not echoed


def test_checkpoint_with_control_character_name_is_a_usage_error(tmp_path):
    names = list(MA52.class_names)
    names[3] = "touch\x1bnose"
    ckpt = _project_checkpoint(tmp_path)
    obj = torch.load(ckpt, weights_only=True)
    obj["meta"]["taxonomy"]["class_names"] = names
    torch.save(obj, ckpt)
    with pytest.raises(CheckpointError, match=r"project\.pt.*touch\\x1bnose"):
        load_official(ckpt)
    res = _cli("pipelines.video_to_labels", VIDEOS_DIR / "0019_02_0078.mp4", "--out", tmp_path / "o",
               "--weights", ckpt)
    assert res.returncode == 2 and "project.pt" in res.stderr and "\x1b" not in res.stderr, res.stderr[-1000:]


def test_huge_class_name_is_refused_in_seconds(tmp_path):
    ckpt = _project_checkpoint(tmp_path)
    obj = torch.load(ckpt, weights_only=True)
    obj["meta"]["taxonomy"]["class_names"][0] = "n" * (10 * 2**20)
    torch.save(obj, ckpt)
    t0 = time.perf_counter()
    res = _cli("pipelines.video_to_labels", VIDEOS_DIR / "0019_02_0078.mp4", "--out", tmp_path / "o",
               "--weights", ckpt)
    assert res.returncode == 2 and "more than 200" in res.stderr and len(res.stderr) < 5000, res.stderr[-1000:]
    assert time.perf_counter() - t0 < 60


def test_annotation_label_with_escape_is_refused_naming_the_line(tmp_path):
    table = tmp_path / "spans.csv"
    table.write_text("video,start_s,end_s,label\n"
                     f"{VIDEOS_DIR / '0019_02_0078.mp4'},0.0,1.0,nod\n"
                     f"{VIDEOS_DIR / '0019_02_0078.mp4'},1.0,2.0,\x1b[2Jshake\n")
    res = _cli("pipelines.build_dataset", table, "--out", tmp_path / "data.pkl")
    assert res.returncode == 2, res.stderr[-1000:]
    assert "spans.csv:3" in res.stderr and "U+001B" in res.stderr and "\x1b" not in res.stderr


# --------------------------------------------------------------------------- 4. metadata sizes


@pytest.mark.parametrize("field,value,message", [
    ("channels", 60000, "channels must be an integer 1..2048"),
    ("depths", [20000, 3, 3, 3], "depths must be 4 integers"),
    ("channels", 128, "the metadata says model channels = 128, the tensors have 96"),
    ("depths", [3, 3, 3, 2], "the metadata says model depths"),
    ("num_classes", "52", "num_classes must be an integer"),
])
def test_model_metadata_is_checked_before_building(tmp_path, field, value, message):
    ckpt = _project_checkpoint(tmp_path, edit=lambda meta: meta["model"].__setitem__(field, value))
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=message) as info:
        load_official(ckpt)
    assert str(ckpt) in str(info.value) and time.perf_counter() - t0 < 5


def test_clip_len_is_bounded_and_the_run_is_a_usage_error(tmp_path):
    ckpt = _project_checkpoint(tmp_path, edit=lambda meta: meta.__setitem__("clip_len", 10**9))
    t0 = time.perf_counter()
    res = _cli("pipelines.video_to_labels", VIDEOS_DIR / "0019_02_0078.mp4", "--out", tmp_path / "o",
               "--weights", ckpt)
    assert res.returncode == 2 and "clip_len must be 1..1024" in res.stderr and "project.pt" in res.stderr
    assert "Traceback" not in res.stderr and time.perf_counter() - t0 < 60


# --------------------------------------------------------------------------- 1 and 7. Ray


needs_ray = pytest.mark.skipif(not ray_data_installed(), reason="the [ray] extra is not installed")


def _user_env() -> dict[str, str]:
    """The environment a user starts the CLI with: no Ray settings of the tests'."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return env


@needs_ray
def test_engine_flag_does_not_import_ray():
    code = ("import sys; from pipelines.video_to_labels import main\n"
            "from pipelines.engines.ray import ray_data_installed\n"
            "assert ray_data_installed()\n"
            "import argparse; from pipelines.engines.ray import add_engine_arguments\n"
            "ap = argparse.ArgumentParser(); add_engine_arguments(ap); ap.parse_args(['--engine', 'ray'])\n"
            "print('ray' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=_user_env(),
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "False", res.stderr[-2000:]


@needs_ray
def test_ray_imported_first_still_stays_on_loopback():
    code = ("import ray, ray._private.ray_constants as c\n"
            "assert c.ENABLE_RAY_CLUSTER\n"
            "from pipelines.engines.ray import keep_ray_on_loopback\n"
            "keep_ray_on_loopback()\n"
            "from ray._private.services import get_node_ip_address\n"
            "print(get_node_ip_address())")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=_user_env(),
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "127.0.0.1", res.stderr[-2000:]


@needs_ray
def test_unreachable_ray_address_is_a_usage_error(tmp_path):
    t0 = time.perf_counter()
    res = _cli("pipelines.video_to_labels", VIDEOS_DIR / "0019_02_0078.mp4", "--out", tmp_path / "o",
               "--engine", "ray", "--ray-address", "127.0.0.1:1", env=_user_env(), timeout=90)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "--ray-address '127.0.0.1:1'" in res.stderr and "Traceback" not in res.stderr
    assert time.perf_counter() - t0 < 60


@needs_ray
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cli_started_ray_listens_on_loopback_only(tmp_path):
    """As a user runs it: no RAY_* variable, the CLI imports what it imports; every listener of
    every Ray process is on 127.0.0.0/8 or ::1."""
    out = tmp_path / "out"
    proc = start_cli("pipelines.video_to_labels", VIDEOS_DIR / "0019_02_0078.mp4", "--out", out, "--engine", "ray",
                     env=_user_env())
    with ListeningSockets(proc.pid) as sockets:
        _, stderr = proc.communicate(timeout=540)
    names = {name for name, _, _ in sockets.seen}
    assert {"gcs_server", "raylet"} <= names, names
    assert not sockets.not_loopback(), sockets.not_loopback()
    assert proc.returncode == 0, stderr[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigterm_ends_a_run_like_ctrl_c(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for clip in sorted(VIDEOS_DIR.glob("*.mp4")):
        shutil.copy(clip, src / clip.name)
    out = tmp_path / "out"
    proc = start_cli("pipelines.video_to_labels", src, "--out", out)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("*.labels.json")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be stopped"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted: finished videos are kept" in stderr
    assert (out / "summary.csv").is_file() and not list(out.glob("*.part"))
