"""Helpers for the fault tests: a network link that can be cut, a tiny disk, bounded waits."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# How often the accept loop checks whether the link was cut (a blocked accept() is not
# woken by close() on Linux, so it polls).
_ACCEPT_POLL_S = 0.1
_CHUNK = 64 * 1024
POLL_S = 0.05


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until true; fail the test with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(POLL_S)


class CuttableLink:
    """A TCP forwarder standing for a node's network: ``cut()`` drops every connection and
    refuses new ones (the node's uplink is down); ``restore()`` lets them through again.

    The broker and the hub stay up meanwhile, exactly as when one store loses its line.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        """Listen on a free loopback port (``self.port``) and forward to the target."""
        self.target = (target_host, target_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._cut = threading.Event()
        self.accepted = 0
        self.restore()

    @property
    def url(self) -> str:
        """The broker URL a node should use to go through this link."""
        return f"mqtt://127.0.0.1:{self.port}"

    def restore(self) -> None:
        """Accept connections again."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(_ACCEPT_POLL_S)
        self._cut.clear()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Close the listener and every forwarded connection (connects are then refused)."""
        self._cut.set()
        with self._lock:
            sockets, self._sockets = self._sockets, []
            listener, self._listener = self._listener, None
        for sock in [*sockets, *([listener] if listener else [])]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        """Forward each accepted connection until the link is cut."""
        while not self._cut.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if self._cut.is_set():
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
                self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        """Copy bytes one way until either side closes, then close both."""
        try:
            while data := src.recv(_CHUNK):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def not_runnable(reason: str) -> None:
    """A fault test that this machine cannot stage: a loud skip, a failure on CI.

    Listed at the end of the run by tests/conftest.py; CI (``CI=true``) refuses to pass
    with it unless ``STOREWAVE_ALLOW_MISSING_SERVICES=1``, as tests/run.sh does.
    """
    from tests.conftest import _note_not_run

    if os.environ.get("CI") == "true" and os.environ.get("STOREWAVE_ALLOW_MISSING_SERVICES") != "1":
        pytest.fail(f"{reason} (CI=true: a fault test that cannot run is a failure)")
    _note_not_run(reason)
    pytest.skip(reason)


@contextlib.contextmanager
def tiny_filesystem(size_bytes: int) -> Iterator[Path]:
    """A real file system of ``size_bytes`` (tmpfs) for the disk-full tests: writes past it
    fail with ENOSPC, as on a full flash. Needs the right to mount (root here); without it
    the test is reported as not run (see :func:`not_runnable`)."""
    mountpoint = Path(tempfile.mkdtemp(prefix="sw-tiny-fs-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        mountpoint.rmdir()
        not_runnable(f"disk-full fault tests NOT RUN: cannot mount a tmpfs ({done.stderr.strip()})")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            mountpoint.rmdir()
