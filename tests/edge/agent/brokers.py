"""Test helpers: a Mosquitto of our own (password file + ACL patterns) and a tiny ack-ing hub."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from storewave.wire import Ack, parse_event

HUB_USER = "hub"
HUB_PASSWORD = "hub-test-password-0001"
# How long a helper waits for a broker or a condition before the test fails: generous,
# since this 2-core machine runs several suites at once (a pass never waits this long).
READY_TIMEOUT_S = 30.0

# The node ACL of DESIGN.md: one pattern per leaf; %u is the username = node id.
ACL = f"""user {HUB_USER}
topic readwrite sw/v1/#

pattern write sw/v1/nodes/%u/events
pattern write sw/v1/nodes/%u/telemetry
pattern readwrite sw/v1/nodes/%u/status
pattern read sw/v1/nodes/%u/config
pattern read sw/v1/nodes/%u/cmd
pattern read sw/v1/nodes/%u/ack
"""


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Any, timeout_s: float = READY_TIMEOUT_S, what: str = "condition") -> None:
    """Poll ``condition()`` until true; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


class Mosquitto:
    """A private Mosquitto on a free loopback port; can be killed and restarted on that port."""

    def __init__(self, binary: str, workdir: Path, users: dict[str, str]) -> None:
        """Write the password file (mosquitto_passwd), ACL and config under ``workdir``."""
        self.binary = binary
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        passwd = self.dir / "passwd"
        passwd.write_text("")
        for user, password in {HUB_USER: HUB_PASSWORD, **users}.items():
            subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
        (self.dir / "acl").write_text(ACL)
        (self.dir / "mosquitto.conf").write_text(
            ""
            # As root Mosquitto drops to user 'mosquitto', who cannot read a private tmp dir.
            + ("user root\n" if os.geteuid() == 0 else "")
            + f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {passwd}\n"
            f"acl_file {self.dir / 'acl'}\n"
            "persistence false\n"
            "max_queued_messages 20000\n"
            f"log_dest file {self.dir / 'mosquitto.log'}\n"
        )

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:port``."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until the port accepts connections."""
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.dir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                log = (self.dir / "mosquitto.log").read_text(errors="replace")
                raise AssertionError(f"mosquitto exited: {log[-2000:]}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(listening, what="mosquitto to listen")

    def kill(self) -> None:
        """SIGKILL the broker (an outage, not a clean stop)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        """Terminate the broker we started."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


class Amqtt:
    """The hub's fallback broker (amqtt, hub.mqtt.amqtt_broker) on a free port, same users."""

    hub_user = "_storewave_hub"  # the account name hub.mqtt.credentials gives the hub

    def __init__(self, workdir: Path, users: dict[str, str]) -> None:
        """Write a Mosquitto-format password file for the hub and ``users``."""
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.passwd = self.dir / "passwd"
        self.passwd.write_text("")
        for user, password in {self.hub_user: HUB_PASSWORD, **users}.items():
            subprocess.run(["mosquitto_passwd", "-b", str(self.passwd), user, password], check=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:port``."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the broker process and wait until it listens."""
        argv = ["-m", "hub.mqtt.amqtt_broker", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [sys.executable, *argv, "--password-file", str(self.passwd)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def listening() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, "amqtt exited"
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(listening, what="amqtt to listen")

    def stop(self) -> None:
        """Terminate the broker we started."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@dataclass
class AckingHub:
    """A minimal hub: stores events by (node, boot, seq), acks the highest contiguous seq."""

    url_host: str
    port: int
    user: str = HUB_USER
    password: str = HUB_PASSWORD
    acking: bool = True
    events: dict[tuple[str, int, int], Any] = field(default_factory=dict)
    received: int = 0
    statuses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _contiguous: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(lambda: -1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    arrivals: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Connect (reconnecting on its own) and subscribe to every node's uplink."""
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="test-hub")
        client.username_pw_set(self.user, self.password)
        client.reconnect_delay_set(0.05, 0.2)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self.client = client
        self.connected = threading.Event()
        client.connect_async(self.url_host, self.port)
        client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        """Resubscribe on every connect."""
        client.subscribe(
            [
                ("sw/v1/nodes/+/events", 1),
                ("sw/v1/nodes/+/telemetry", 0),
                ("sw/v1/nodes/+/status", 1),
            ]
        )
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        """Store once per (node, boot, seq); ack the highest contiguous seq of that boot."""
        node, leaf = msg.topic.split("/")[3:5]
        if leaf == "status":
            with self._lock:
                self.statuses.append((node, json.loads(msg.payload)))
            return
        event = parse_event(msg.payload, topic_node=node)
        with self._lock:
            self.received += 1
            key = (node, event.boot, event.seq)
            if key not in self.events:
                self.events[key] = event
                self.arrivals[str(event.id)] = time.time()
            cursor = (node, event.boot)
            while (node, event.boot, self._contiguous[cursor] + 1) in self.events:
                self._contiguous[cursor] += 1
            seq = self._contiguous[cursor]
        if self.acking and seq >= 0:
            client.publish(
                f"sw/v1/nodes/{node}/ack", Ack(boot=event.boot, seq=seq).to_bytes(), qos=1
            )

    def of_type(self, kind: str) -> list[Any]:
        """Stored events of one type, in (boot, seq) order."""
        with self._lock:
            return [e for k, e in sorted(self.events.items()) if e.type == kind]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish as the hub (config, cmd)."""
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(READY_TIMEOUT_S)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()  # wakes the network thread, so loop_stop returns at once
        self.client.loop_stop()
