"""``--engine ray`` (pipelines.engines.ray): the same outputs as the local engine, on a local Ray
and on a two-node cluster on this machine; bad files and a worker killed mid-run accounted
for; nothing partial; Ctrl-C; a rerun that skips everything; Ray bound to 127.0.0.1 only.

The stage classes are also run in-process, without Ray, to check their pieces quickly.
"""
import os

# Before ray is imported: the cluster of this module's fixture advertises 127.0.0.1 (else ray
# resolves it to the machine's outward address), and so do the drivers started from here.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import csv  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("ray.data")  # the [ray] extra (CI installs it; MMN_NO_SKIP turns a skip into a failure)
psutil = pytest.importorskip("psutil")

from mmn.inference import Recognizer  # noqa: E402
from pipelines.discovery import VideoJob  # noqa: E402
from pipelines.engines.ray import (  # noqa: E402
    ModelStage,
    PlanError,
    PoseStage,
    RaySettings,
    VideoRow,
    _batch,
    _rows,
    driver_threads,
    plan_stages,
    write_stage,
)
from pipelines.job import JobOptions, job_record, process_video  # noqa: E402
from pipelines.stages.classify import ModelInfo  # noqa: E402
from pipelines.stages.progress import silent_progress  # noqa: E402
from pose.skeleton_file import read_skeleton  # noqa: E402
from tests.cli import run_cli, start_cli  # noqa: E402
from tests.data import ROOT, VIDEOS_DIR  # noqa: E402
from tests.listeners import ListeningSockets  # noqa: E402

CLIPS = sorted(p.name for p in VIDEOS_DIR.glob("*.mp4"))
BROKEN = {"cut_short.mp4", "empty.mp4", "notes.mp4"}
CLI = "pipelines.video_to_labels"


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _labels_without_timing(path: Path) -> dict:
    doc = json.loads(path.read_text())
    assert set(doc.pop("timing_s")) >= {"pose", "total"}
    return doc


def _same_outputs(a: Path, b: Path, keys) -> None:
    """The run tables, each video's labels JSON apart from timings, its skeleton arrays and
    its other files byte for byte."""
    for table in ("failures.csv", "summary.csv", "windows.csv"):
        assert sorted(map(str, _csv(a / table))) == sorted(map(str, _csv(b / table))), table
    for key in keys:
        assert _labels_without_timing(a / f"{key}.labels.json") == _labels_without_timing(b / f"{key}.labels.json")
        sa, sb = read_skeleton(a / f"{key}.skeleton.h5"), read_skeleton(b / f"{key}.skeleton.h5")
        for field in ("keypoints", "scores", "flags", "timestamps", "region_motion"):
            np.testing.assert_array_equal(getattr(sa, field), getattr(sb, field), err_msg=f"{key} {field}")
        for suffix in ("motion.csv", "events.csv", "heatmap.png", "timeline.png"):
            assert (a / f"{key}.{suffix}").read_bytes() == (b / f"{key}.{suffix}").read_bytes(), f"{key}.{suffix}"


def _no_parts(out: Path) -> None:
    assert not [p.name for p in out.iterdir() if p.name.endswith(".part")]


# --------------------------------------------------------------------------- without Ray: the pieces


def test_plan_fits_the_cluster_or_is_a_usage_error():
    plan = plan_stages(2, 0, 1, RaySettings(), has_model=True)
    assert (plan.pose_actors, plan.mmn_actors, plan.mmn_gpus) == (1, 1, 0) and plan.reserved_cpus <= 2
    plan = plan_stages(64, 4, 4, RaySettings(mmn_actors=4), has_model=True, export_clips=True)
    assert plan.mmn_gpus == 1 and plan.reserved_cpus <= 64 and plan.pose_actors == 46
    assert plan_stages(64, 4, 4, RaySettings(), has_model=True, device="cpu").mmn_gpus == 0
    assert plan_stages(2, 0, 1, RaySettings(pose_actors=2, pose_cpus=0.5), has_model=True).reserved_cpus == 2
    assert plan_stages(2, 0, 1, RaySettings(), has_model=False).mmn_actors == 0
    with pytest.raises(PlanError, match="reserve 3 CPUs"):
        plan_stages(2, 0, 1, RaySettings(pose_actors=2), has_model=True)
    with pytest.raises(PlanError, match="no GPU"):
        plan_stages(8, 0, 1, RaySettings(), has_model=True, device="cuda")


def test_stages_in_process_give_process_videos_document(tmp_path, golden_weights):
    """Pose actor → MMN actor → write task, called directly: the same labels document as
    process_video, and the labels JSON written once by the write task; mixing two videos'
    windows in one MMN batch moves probabilities only in the last bits; a broken file is a
    failure row, not an exception."""
    rec = Recognizer.from_checkpoints(golden_weights, device="cpu")
    broken = tmp_path / "notes.mp4"
    broken.write_text("not a video\n")
    jobs = [VideoJob(VIDEOS_DIR / CLIPS[0], "a"), VideoJob(VIDEOS_DIR / CLIPS[1], "b"), VideoJob(broken, "notes")]
    local = process_video(jobs[0], JobOptions(out=tmp_path / "local"), rec, progress=silent_progress)
    opts = JobOptions(out=tmp_path / "ray")
    threads = driver_threads()
    posed = PoseStage(opts, threads)(_batch([VideoRow(j, job_record(j, opts, rec)) for j in jobs]))
    assert [r.error.stage if r.error else None for r in _rows(posed)] == [None, None, "probe"]
    args = dict(opts=opts, checkpoints=[golden_weights.read_bytes()], sha256=[rec.streams[0].meta.sha256],
                device="cpu", threads=threads)
    one = ModelStage(**args)(posed)
    written = _rows(write_stage(one, opts=opts, model=ModelInfo.of(rec), threads=threads))
    assert [r.error is None for r in written] == [True, True, False]
    assert all(r.skeleton is None and r.scores is None for r in written)  # nothing big goes back to the driver
    doc = written[0].doc
    assert set(doc.pop("timing_s")) == {"pose", "model", "pictures", "total"} and local.pop("timing_s")
    assert doc == local
    on_disk = json.loads((tmp_path / "ray" / "a.labels.json").read_text())
    assert on_disk.pop("timing_s")["pose"] == round(written[0].pose_s, 3) and on_disk == local

    together = _rows(ModelStage(**args, across=True)(posed))
    apart = _rows(one)
    for t, a in zip(together[:2], apart[:2]):
        np.testing.assert_allclose(t.scores.probs, a.scores.probs, atol=1e-5)
        assert (t.scores.probs.argmax(1) == a.scores.probs.argmax(1)).all()
        assert t.scores.heat.shape == a.scores.heat.shape and t.scores.heat_name == a.scores.heat_name


# --------------------------------------------------------------------------- on Ray


@pytest.fixture(scope="module")
def inputs(labelled) -> Path:
    return labelled.inputs


@pytest.fixture(scope="module")
def local_run(labelled) -> Path:
    """The local engine's outputs: the session's labelled folder (``--export-clips``, conftest)."""
    assert labelled.result.returncode == 1, labelled.result.stderr[-3000:]
    return labelled.out


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes on this machine, one CPU each, both on 127.0.0.1: the module's one Ray."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                      "include_dashboard": False})
    c.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    c.wait_for_nodes()
    yield c
    c.shutdown()


@pytest.fixture(scope="module")
def cluster_run(inputs, cluster, golden_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("ray2")
    with ListeningSockets(os.getpid()) as sockets:  # the cluster's processes are this process's children
        res = run_cli(CLI, inputs, "--out", out, "--weights", golden_weights, "--export-clips", "--device", "cpu",
                      "--engine", "ray", "--ray-address", cluster.address, "--pose-actors", "2", "--pose-cpus", "0.5")
    return res, out, sockets


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_node_cluster_gives_the_local_engines_outputs(local_run, cluster_run):
    res, out, sockets = cluster_run
    assert res.returncode == 1, res.stderr[-3000:]
    assert "2 pose actor(s) × 0.5 CPU" in res.stderr and "on 2 node(s)" in res.stderr
    _same_outputs(local_run, out, [Path(c).stem for c in CLIPS])
    failures = {Path(r["file"]).name: r["stage"] for r in _csv(out / "failures.csv")}
    assert failures == {"cut_short.mp4": "decode", "empty.mp4": "probe", "notes.mp4": "probe"}
    assert sorted(p.name for p in out.glob("*.failed.json")) == ["cut_short.failed.json", "empty.failed.json",
                                                                 "notes.failed.json"]
    stages = _csv(out / "stages.csv")
    assert len(stages) == 6 and len({r["pose_node"] for r in stages}) == 2  # both nodes did pose work
    assert all(r["model_node"] and r["write_node"] for r in stages if r["status"] == "done")
    _no_parts(out)
    assert sockets.seen and not sockets.not_loopback(), sockets.not_loopback()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_rerun_skips_everything_without_starting_ray(inputs, cluster_run, golden_weights, tmp_path):
    out = Path(shutil.copytree(cluster_run[1], tmp_path / "out"))
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if not p.name.endswith(".csv")}
    t0 = time.perf_counter()
    res = run_cli(CLI, inputs, "--out", out, "--weights", golden_weights, "--export-clips", "--device", "cpu",
                  "--engine", "ray")
    assert res.returncode == 1, res.stderr[-3000:]
    assert time.perf_counter() - t0 < 60 and "ray:" not in res.stderr  # nothing submitted: no Ray at all
    assert res.stderr.count("unchanged since it last failed") == 3
    assert sorted(r["status"] for r in _csv(out / "summary.csv")) == ["already done"] * 3 + ["failed"] * 3
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if not p.name.endswith(".csv")} == stamps


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_killed_worker_is_accounted_for_and_local_ray_binds_loopback_only(local_run, golden_weights, tmp_path):
    """A pose worker dies (os._exit) in the middle of writing one video's skeleton, on every
    try: that video is a failure with stage ``worker``, the other is labelled as locally,
    nothing partial is left; the Ray this run started listens on 127.0.0.1 only."""
    src = tmp_path / "in"
    src.mkdir()
    for name in CLIPS[:2]:
        shutil.copy(VIDEOS_DIR / name, src / name)
    crash, fine = Path(CLIPS[0]).stem, Path(CLIPS[1]).stem
    out = tmp_path / "out"
    # tests/crash_hook/sitecustomize.py makes that video's pose stage die in every process the run starts
    path = os.pathsep.join([str(ROOT / "tests" / "crash_hook"), str(ROOT)] + [os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "MMN_TEST_CRASH_IN_POSE": crash, "PYTHONPATH": path.rstrip(os.pathsep)}
    env.pop("RAY_ADDRESS", None)
    proc = start_cli(CLI, src, "--out", out, "--weights", golden_weights, "--export-clips", "--device", "cpu",
                     "--engine", "ray", env=env)
    with ListeningSockets(proc.pid) as sockets:
        _, stderr = proc.communicate(timeout=540)
    assert proc.returncode == 1, stderr[-3000:]
    assert "a local Ray on this machine" in stderr
    failures = _csv(out / "failures.csv")
    assert [(Path(r["file"]).stem, r["stage"]) for r in failures] == [(crash, "worker")]
    assert "died 2 times" in failures[0]["reason"]
    assert {r["video"]: r["status"] for r in _csv(out / "summary.csv")} == {crash: "failed", fine: "done"}
    assert sorted(p.name for p in out.glob(f"{crash}*")) == [f"{crash}.failed.json"]
    assert json.loads((out / f"{crash}.failed.json").read_text())["stage"] == "worker"
    _no_parts(out)
    mine, local = (_labels_without_timing(d / f"{fine}.labels.json") for d in (out, local_run))
    assert mine["video"].pop("path") != local["video"].pop("path") and mine == local  # another input folder
    names = {name for name, _, _ in sockets.seen}
    assert {"gcs_server", "raylet"} <= names, names  # the poll saw Ray's own processes
    assert not sockets.not_loopback(), sockets.not_loopback()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ctrl_c_keeps_what_finished(inputs, golden_weights, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ}
    env.pop("RAY_ADDRESS", None)
    proc = start_cli(CLI, inputs, "--out", out, "--weights", golden_weights, "--device", "cpu", "--engine", "ray",
                     env=env)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("*.labels.json")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted: finished videos are kept" in stderr
    summary = {r["video"]: r["status"] for r in _csv(out / "summary.csv")}
    assert len(summary) == 6 and "not processed" in summary.values()
    finished = list(out.glob("*.labels.json"))
    assert finished and all(json.loads(p.read_text())["windows"] for p in finished)
    for key, status in summary.items():
        if status == "done":
            assert (out / f"{key}.labels.json").is_file()
    _no_parts(out)
