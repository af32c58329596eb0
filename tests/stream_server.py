"""A video served over HTTP on 127.0.0.1, as a stream URL is: whole, or cut short and then
silent (a stalled stream). ``serve`` is the fixture the source and live tests share."""
from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator

import pytest

__all__ = ["ClipServer", "serve"]


class ClipServer:
    """A threaded HTTP server on 127.0.0.1 sending ``data`` at :attr:`url` (all of it, or its
    first ``cut`` fraction and then holding the connection open without sending for up to
    ``hold_s`` seconds before closing it)."""

    def __init__(self, data: bytes, cut: float | None = None, hold_s: float = 60.0) -> None:
        release = self.release = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data if cut is None else data[:int(len(data) * cut)])
                self.wfile.flush()
                if cut is not None:
                    release.wait(hold_s)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/session.mp4"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., ClipServer]]:
    """``serve(data, cut=None, hold_s=60)`` starts a :class:`ClipServer`; all are closed after
    the test. ``hold_s=0`` closes the connection right after the cut: a server that went away."""
    servers: list[ClipServer] = []

    def start(data: bytes, cut: float | None = None, hold_s: float = 60.0) -> ClipServer:
        servers.append(ClipServer(data, cut, hold_s))
        return servers[-1]

    yield start
    for s in servers:
        s.close()
