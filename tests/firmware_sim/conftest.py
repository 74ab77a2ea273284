"""Fixtures for the simulator suites: a real Mosquitto on a free port, and a hub-side client."""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

# Bounds for waiting on real processes and sockets (never a fixed sleep).
START_TIMEOUT_S = 10.0
POLL_S = 0.02


def wait_for(condition: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Mosquitto:
    """A private Mosquitto: anonymous loopback listener, persistence so it can restart."""

    def __init__(self, binary: str, workdir: Path, auth_lines: str = "") -> None:
        """``auth_lines``: password_file/acl_file lines; empty = anonymous access."""
        self.binary = binary
        self.port = _free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            + (auth_lines or "allow_anonymous true\n")
            + "persistence true\n"
            f"persistence_location {workdir}/\n"
            "max_queued_messages 10000\n"
            "max_inflight_messages 100\n"
            "log_dest none\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>``."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)])
        wait_for(lambda: _port_open(self.port), START_TIMEOUT_S, "mosquitto to listen")

    def stop(self) -> None:
        """Stop it (SIGTERM saves the persistence file) and wait for the exit."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=START_TIMEOUT_S)
            self.proc = None


@pytest.fixture
def broker(mosquitto_bin: str, tmp_path: Path) -> Iterator[Mosquitto]:
    """A running private Mosquitto for one test."""
    server = Mosquitto(mosquitto_bin, tmp_path)
    server.start()
    yield server
    server.stop()


class HubSide:
    """A test client playing the hub: records what nodes publish, publishes to nodes."""

    def __init__(
        self, port: int, auto_ack: bool = False, username: str = "", password: str = ""
    ) -> None:
        self.messages: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self.seen: list[tuple[str, bytes]] = []
        self.auto_ack = auto_ack
        self._contiguous: dict[tuple[str, int], int] = {}
        self._got: dict[tuple[str, int], set[int]] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hub-test-{port}")
        self.client.on_message = self._on_message
        subscribed = []
        self.client.on_subscribe = lambda *args: subscribed.append(True)
        # Subscribe on every connect: a clean session forgets it when the broker restarts.
        self.client.on_connect = lambda c, *args: c.subscribe("sw/v1/nodes/+/+", qos=1)
        if username:
            self.client.username_pw_set(username, password)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_for(lambda: subscribed, START_TIMEOUT_S, "the hub-side subscription")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        leaf = message.topic.rsplit("/", 1)[-1]
        if leaf in ("config", "cmd", "ack"):
            return  # our own publications
        self.seen.append((message.topic, bytes(message.payload)))
        if self.auto_ack and leaf in ("events", "telemetry"):
            self._ack(bytes(message.payload))

    def _ack(self, payload: bytes) -> None:
        """Ack the highest contiguous seq per (node, boot), as the hub does."""
        env = json.loads(payload)
        key = (env["node"], env["boot"])
        got = self._got.setdefault(key, set())
        got.add(env["seq"])
        top = self._contiguous.get(key, -1)
        while top + 1 in got:
            top += 1
        self._contiguous[key] = top
        ack = json.dumps({"boot": env["boot"], "seq": top}, separators=(",", ":")).encode()
        self.client.publish(f"sw/v1/nodes/{env['node']}/ack", ack, qos=1)

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        """Every envelope of ``event_type`` seen so far, parsed."""
        out = []
        for topic, payload in list(self.seen):
            if topic.endswith(("/events", "/telemetry")):
                env = json.loads(payload)
                if env.get("type") == event_type:
                    out.append(env)
        return out

    def statuses(self, node: str) -> list[dict[str, Any]]:
        """Status messages of ``node`` seen so far."""
        return [json.loads(p) for t, p in list(self.seen) if t == f"sw/v1/nodes/{node}/status"]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish QoS 1 and wait for the broker to take it."""
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5.0)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def hub_side(broker: Mosquitto) -> Iterator[HubSide]:
    """The hub's half of the conversation, acking every event."""
    side = HubSide(broker.port, auto_ack=True)
    yield side
    side.close()
