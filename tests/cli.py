"""The one way tests run a command-line program: ``python -m MODULE ARGS`` in the project root,
to its end (:func:`run_cli`) or in the background (:func:`start_cli`)."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

from tests.data import ROOT

__all__ = ["run_cli", "start_cli"]


def _command(module: str, args: tuple[object, ...]) -> list[str]:
    return [sys.executable, "-m", module, *map(str, args)]


def run_cli(module: str, *args: object, timeout: float = 600, env: Mapping[str, str] | None = None
            ) -> subprocess.CompletedProcess:
    """Run ``python -m module *args`` (each argument through ``str``) from the project root,
    capturing stdout and stderr as text; ``env`` replaces the environment when given."""
    return subprocess.run(_command(module, args), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else dict(env))


def start_cli(module: str, *args: object, env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """The same started in the background (stdout and stderr piped, text), for tests that
    signal or race it; the caller waits for it (``communicate``) and kills it on failure."""
    return subprocess.Popen(_command(module, args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=None if env is None else dict(env))
