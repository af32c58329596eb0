"""Engines: what runs the stages (:mod:`pipelines.stages`) over many videos.

- :mod:`pipelines.engines.local`: one process, one video after another;
- :mod:`pipelines.engines.ray`: Ray Data over this machine's cores or a cluster (imported only
  when ``--engine ray`` is asked for);
- :mod:`pipelines.engines.flags`: their command-line flags (no Ray import).

:func:`engine_outcomes` runs the engine a command line asked for; every engine yields the
same :class:`pipelines.job.VideoOutcome` per video and writes the same files.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence

from pipelines.discovery import VideoJob
from pipelines.engines.flags import ENGINES
from pipelines.job import JobOptions, VideoOutcome
from pipelines.stages.classify import Classifier

__all__ = ["ENGINES", "Engine", "engine_outcomes", "select_engine"]

# (parsed flags, videos, options, classifier or None, run-table suffix) -> outcomes
Engine = Callable[[argparse.Namespace, Sequence[VideoJob], JobOptions, Classifier | None, str],
                  Iterator[VideoOutcome]]


def _local(args: argparse.Namespace, jobs: Sequence[VideoJob], opts: JobOptions, classifier: Classifier | None,
           suffix: str) -> Iterator[VideoOutcome]:
    from pipelines.engines.local import iter_outcomes

    return iter_outcomes(jobs, opts, classifier, retry_failed=args.retry_failed)


def select_engine(name: str) -> Engine:
    """The engine called ``name`` (one of :data:`ENGINES`); Ray's module is imported here,
    only when it is asked for."""
    if name == "local":
        return _local
    if name == "ray":
        from pipelines.engines.ray import outcomes_from_args

        return outcomes_from_args
    raise ValueError(f"unknown engine {name!r}; expected one of {', '.join(ENGINES)}")


def engine_outcomes(args: argparse.Namespace, jobs: Sequence[VideoJob], opts: JobOptions,
                    classifier: Classifier | None, suffix: str = "") -> Iterator[VideoOutcome]:
    """The outcomes of ``jobs`` from the engine ``args.engine`` (the CLI's loop is the same)."""
    return select_engine(getattr(args, "engine", "local"))(args, jobs, opts, classifier, suffix)
