"""The local engine: one process, one video after another, one pose estimator for all."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

from pipelines.discovery import VideoJob
from pipelines.job import JobOptions, VideoOutcome, run_video
from pipelines.stages.classify import Classifier
from pipelines.stages.pose import SharedEstimator
from pipelines.stages.progress import ProgressFactory, tqdm_frames

__all__ = ["iter_outcomes"]


def iter_outcomes(jobs: Sequence[VideoJob], opts: JobOptions, classifier: Classifier | None = None, *,
                  retry_failed: bool = False, progress: ProgressFactory = tqdm_frames) -> Iterator[VideoOutcome]:
    """:func:`pipelines.job.run_video` over ``jobs`` with one shared pose estimator (closed at
    the end)."""
    estimator = SharedEstimator(opts.pose)
    try:
        for job in jobs:
            yield run_video(job, opts, classifier, retry_failed=retry_failed, progress=progress, estimator=estimator)
    finally:
        estimator.close()
