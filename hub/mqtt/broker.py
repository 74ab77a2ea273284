"""The broker the hub uses: managed Mosquitto, managed amqtt, or an external URL.

``start_broker(mode, data_dir)`` returns a :class:`Broker`; the managed kinds run in a
child process under a supervisor thread that restarts it if it dies and stops it with
the hub.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import unquote, urlsplit

from hub.mqtt.credentials import HUB_USERNAME, CredentialStore

log = logging.getLogger(__name__)

# Sub-directories of the hub's data_dir each managed broker keeps its files in.
MANAGED_BROKER_DIRS = ("mosquitto", "amqtt")
MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
LOOPBACK = "127.0.0.1"
# The conventional MQTT port, used when free so edge configs can keep the default URL.
DEFAULT_MQTT_PORT = 1883
# A broker process usually listens within ~100 ms; 15 s covers a loaded 2-core CI box.
READY_TIMEOUT_S = 15.0
READY_POLL_S = 0.02
# Restart back-off: quick first retry (a crash is usually one-off), capped so a broker
# that cannot start does not spin the CPU.
RESTART_BACKOFF_MIN_S = 0.2
RESTART_BACKOFF_MAX_S = 5.0
# A broker that ran this long is considered healthy again: back-off resets.
HEALTHY_RUN_S = 30.0
# SIGTERM first so Mosquitto saves its persistence file; SIGKILL if it hangs.
STOP_TIMEOUT_S = 10.0
SUPERVISE_POLL_S = 0.2


# prctl(2) option: signal the child when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the broker child: get SIGTERM if the hub process dies (no-op off Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class BrokerError(RuntimeError):
    """The broker could not be started or reached."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether ``port`` on loopback can be bound now."""
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def wait_listening(host: str, port: int, timeout_s: float = READY_TIMEOUT_S) -> bool:
    """Poll until ``host:port`` accepts TCP connections or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=READY_POLL_S * 10):
                return True
        except OSError:
            time.sleep(READY_POLL_S)
    return False


def mosquitto_binary() -> str | None:
    """Path of the mosquitto executable, if installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_CANDIDATES if os.access(p, os.X_OK)), None)


class Broker(ABC):
    """What the hub needs from a broker, whoever runs it."""

    url: str
    hub_credentials: tuple[str, str]
    retained_secrets_safe: bool
    supports_mqtt5: bool

    @property
    def host(self) -> str:
        """Host part of :attr:`url`."""
        return urlsplit(self.url).hostname or LOOPBACK

    @property
    def port(self) -> int:
        """Port part of :attr:`url`."""
        return urlsplit(self.url).port or DEFAULT_MQTT_PORT

    @abstractmethod
    def set_node_password(self, node_id: str, password: str) -> None:
        """Create or replace a node's account (username = node id)."""

    @abstractmethod
    def remove_node(self, node_id: str) -> None:
        """Delete a node's account; it can no longer connect."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the broker if the hub runs it."""


class ExternalBroker(Broker):
    """A broker someone else runs (``mqtt://user:pass@host:port``); accounts are theirs."""

    retained_secrets_safe = True
    supports_mqtt5 = True

    def __init__(self, url: str) -> None:
        """Parse ``url``; its user info (if any) is the hub's account."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise BrokerError(f"broker URL must look like mqtt://host:port, got {parts.scheme}://...")
        self.url = f"mqtt://{parts.hostname}:{parts.port or DEFAULT_MQTT_PORT}"
        self.hub_credentials = (unquote(parts.username or ""), unquote(parts.password or ""))
        log.info("using external broker", extra={"broker": self.url})

    def set_node_password(self, node_id: str, password: str) -> None:
        """Accounts on an external broker are managed there: only log it."""
        log.warning("external broker: create the node's account there", extra={"node": node_id})

    def remove_node(self, node_id: str) -> None:
        """Accounts on an external broker are managed there: only log it."""
        log.warning("external broker: remove the node's account there", extra={"node": node_id})

    def stop(self) -> None:
        """Nothing to stop."""


class ManagedBroker(Broker):
    """A broker in a child process, supervised: restarted if it dies, stopped with the hub."""

    name = "broker"

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        """Prepare state in ``data_dir`` and pick the port (kept across restarts)."""
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.credentials = CredentialStore(data_dir)
        self._port = port if port is not None else self._choose_port()
        self.url = f"mqtt://{LOOPBACK}:{self._port}"
        self.hub_credentials = (HUB_USERNAME, self.credentials.hub_password)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self.restarts = 0

    def _choose_port(self) -> int:
        """The port used last time, else 1883 if free, else any free one; remembered."""
        port_file = self.data_dir / "port"
        if port_file.exists():
            return int(port_file.read_text().strip())
        port = DEFAULT_MQTT_PORT if port_is_free(DEFAULT_MQTT_PORT) else free_port()
        port_file.write_text(f"{port}\n")
        return port

    @abstractmethod
    def _command(self) -> list[str]:
        """The argv that runs the broker in the foreground."""

    def _log_file(self) -> Path:
        """Where the broker's own output goes."""
        return self.data_dir / f"{self.name}.log"

    def start(self) -> ManagedBroker:
        """Start the process, wait until it listens, then supervise it."""
        self._spawn()
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"{self.name}-supervisor", daemon=True
        )
        self._supervisor.start()
        return self

    @property
    def pid(self) -> int | None:
        """The broker process id (changes when it is restarted)."""
        return self._proc.pid if self._proc else None

    def _spawn(self) -> None:
        """Run the broker and wait for its listener; raise BrokerError if it never comes up."""
        with self._lock, self._log_file().open("ab") as out:
            # Own session: a Ctrl+C in the hub's terminal must not kill the broker before
            # the ingest has drained; the hub stops it last. Parent-death signal: a hub
            # killed -9 does not leave an orphan broker holding the port.
            self._proc = subprocess.Popen(
                self._command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        if not wait_listening(LOOPBACK, self._port):
            rc = self._proc.poll()
            self._terminate()
            raise BrokerError(
                f"{self.name} did not listen on port {self._port} (exit code {rc}); "
                f"see {self._log_file()}"
            )
        log.info("%s started", self.name, extra={"pid": self._proc.pid, "port": self._port})

    def _supervise(self) -> None:
        """Restart the broker whenever it exits while the hub runs."""
        backoff = RESTART_BACKOFF_MIN_S
        started = time.monotonic()
        while not self._stopping.is_set():
            proc = self._proc
            if proc is None or proc.poll() is None:
                self._stopping.wait(SUPERVISE_POLL_S)
                continue
            if self._stopping.is_set():
                break
            log.warning("%s exited unexpectedly", self.name, extra={"rc": proc.returncode})
            if time.monotonic() - started > HEALTHY_RUN_S:
                backoff = RESTART_BACKOFF_MIN_S
            if self._stopping.wait(backoff):
                break
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX_S)
            try:
                self._spawn()
                self.restarts += 1
                started = time.monotonic()
            except (BrokerError, OSError):
                log.exception("%s restart failed; retrying", self.name)

    def _terminate(self) -> None:
        """SIGTERM the process, then SIGKILL if it does not exit in time."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("%s ignored SIGTERM; killing it", self.name)
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        """Stop supervising and stop the broker."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        with self._lock:
            self._terminate()
        log.info("%s stopped", self.name)

    def set_node_password(self, node_id: str, password: str) -> None:
        """Write the node's hash and make the broker re-read its accounts."""
        self.credentials.set_password(node_id, password)
        self.reload()
        log.info("node credentials set", extra={"node": node_id})

    def remove_node(self, node_id: str) -> None:
        """Delete the node's account and make the broker re-read its accounts."""
        if self.credentials.remove(node_id):
            self.reload()
        log.info("node credentials removed", extra={"node": node_id})

    def reload(self) -> None:
        """Make the running broker pick up changed accounts (default: it re-reads itself)."""


def start_broker(mode: str, data_dir: Path, port: int | None = None) -> Broker:
    """Start (or connect to) the broker named by ``mode``: auto, mosquitto, amqtt or a URL."""
    from hub.mqtt.amqtt_broker import AmqttBroker
    from hub.mqtt.mosquitto import MosquittoBroker

    if "://" in mode:
        return ExternalBroker(mode)
    if mode not in ("auto", "mosquitto", "amqtt"):
        raise BrokerError(f"unknown broker mode {mode!r}: use auto, mosquitto, amqtt or mqtt://...")
    binary = mosquitto_binary()
    if mode == "mosquitto" and binary is None:
        raise BrokerError("--broker mosquitto: no mosquitto binary (apt-get install mosquitto)")
    if mode != "amqtt" and binary is not None:
        return MosquittoBroker(data_dir / MANAGED_BROKER_DIRS[0], binary, port).start()
    if mode == "auto":
        log.warning("mosquitto not installed: falling back to amqtt (not for production)")
    return AmqttBroker(data_dir / MANAGED_BROKER_DIRS[1], port).start()
