"""Tests only: a pose worker that dies mid-write, as a crashing decoder or the OOM killer would.

A process started with this folder first on ``PYTHONPATH`` (the CLI and, through it, every Ray
worker it starts) runs this at start-up. When ``MMN_TEST_CRASH_IN_POSE`` names a video key,
the pose stage (:func:`pipelines.stages.pose.skeleton_stage`) of that video writes a partial
temporary skeleton file and ends the process with ``os._exit(70)``; every other video is
processed as usual. Nothing of this is in the library.
"""
import os

CRASH_KEY = os.environ.get("MMN_TEST_CRASH_IN_POSE")

if CRASH_KEY:
    try:
        from core.atomic import temp_path_beside
        from pipelines.stages import pose as _stage

        _real = _stage.skeleton_stage

        def _crashing_skeleton_stage(job, path, *args, **kwargs):
            if job.key == CRASH_KEY:
                temp_path_beside(path).write_bytes(b"partial")
                os._exit(70)
            return _real(job, path, *args, **kwargs)

        _stage.skeleton_stage = _crashing_skeleton_stage
    except ImportError:  # a process without the project on its path (Ray's own helpers)
        pass
