"""Which sockets a program and its children listen on: for tests that servers stay on loopback."""
from __future__ import annotations

import ipaddress
import threading

import psutil

__all__ = ["ListeningSockets"]


class ListeningSockets:
    """Every listening TCP socket (and unconnected UDP one) opened by a process tree, polled
    while it runs."""

    def __init__(self, root_pid: int) -> None:
        self.root, self.seen, self._stop = root_pid, set(), threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        try:
            root = psutil.Process(self.root)
            procs = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for p in procs:
            try:
                for c in p.net_connections(kind="inet"):
                    if c.status == psutil.CONN_LISTEN or (c.type == 2 and not c.raddr):  # 2: SOCK_DGRAM
                        self.seen.add((p.name(), c.laddr.ip, c.laddr.port))
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.25)

    def not_loopback(self) -> list:
        def loopback(ip: str) -> bool:
            a = ipaddress.ip_address(ip.split("%")[0])
            return a.is_loopback or (a.version == 6 and a.ipv4_mapped is not None and a.ipv4_mapped.is_loopback)
        return sorted(s for s in self.seen if not loopback(s[1]))
