"""A throwaway PostgreSQL cluster (initdb + pg_ctl) on a free port, for tests that restart it.

The machine's shared server on 5432 must never be restarted by a test (other suites use
it at the same time), so a test that stops PostgreSQL under load gets its own cluster in
a temporary folder. PostgreSQL refuses to run as root; as root the cluster belongs to the
``postgres`` account and its commands run through ``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

# initdb and a first start take a second or two on an idle machine; a loaded CI box more.
PG_CTL_TIMEOUT_S = 60
# The cluster is thrown away after the test: no need to make it crash-safe against
# power loss (a fast stop still writes everything out).
_SERVER_OPTIONS = "-c fsync=off -c full_page_writes=off -c max_connections=60"


class ClusterUnavailable(RuntimeError):
    """PostgreSQL's server binaries (or an account to run them) are not on this machine."""


def server_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin`` with initdb, else initdb's folder on PATH."""
    def version(initdb: str) -> int:
        name = Path(initdb).parent.parent.name
        return int(name) if name.isdigit() else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ClusterUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
    )


def _free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayPostgres:
    """One cluster: ``start()``, ``stop(mode)``, ``start()`` again, ``destroy()``."""

    def __init__(self) -> None:
        """Create the cluster (initdb); raise ClusterUnavailable when it cannot exist here."""
        self.bindir = server_bindir()
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="sw-throwaway-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.root, ignore_errors=True)
                raise ClusterUnavailable(
                    "running as root and no 'postgres' account to own a cluster"
                ) from None
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.root.chmod(0o700)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8", "--locale=C")

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the cluster's ``postgres`` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        """Run one server tool as the cluster's owner; raise with its output on failure."""
        cmd = [*self._as, str(self.bindir / tool), *args]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=PG_CTL_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr[-2000:]}\n{tail}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 {_SERVER_OPTIONS}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", str(PG_CTL_TIMEOUT_S), "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions, close every session)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w",
                  "-t", str(PG_CTL_TIMEOUT_S), "stop")

    def destroy(self) -> None:
        """Stop (if running) and delete the cluster."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
