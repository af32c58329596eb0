"""Private temporary folders: one root per server process, one fresh folder per request.

``tempfile.mkdtemp`` makes each folder readable by the server's user only (mode 0700). A
request's folder is removed when the request is done; the root (with anything a crashed
request left behind, and Gradio's cache when it lives there) when the server stops.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


class RequestFolders:
    """Private per-request folders under one private root."""

    def __init__(self, parent: str | Path | None = None) -> None:
        if parent is not None:
            Path(parent).mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="mmn-app-", dir=parent))

    def new(self) -> Path:
        """A fresh empty folder for one request."""
        return Path(tempfile.mkdtemp(prefix="req-", dir=self.root))

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
