"""Helpers for the MQTT suites: bounded polling and node-credential clients."""

from __future__ import annotations

import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

from hub.mqtt.broker import Broker

POLL_S = 0.02


def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    """Poll ``condition`` until true or ``timeout_s`` passes; return its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(POLL_S)
    return condition()


def try_connect(
    broker: Broker, username: str | None, password: str | None, client_id: str, mqtt5: bool = True
) -> tuple[mqtt.Client, object]:
    """Connect once; return the (running) client and the CONNACK reason."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
    )
    if username is not None:
        client.username_pw_set(username, password)
    result: list[object] = []
    client.on_connect = lambda _c, _u, _f, rc, _p=None: result.append(rc)
    client.on_disconnect = lambda *_a: result.append("disconnected") if not result else None
    client.connect(broker.host, broker.port)
    client.loop_start()
    wait_for(lambda: bool(result), 10)
    return client, result[0] if result else None


def connect_node(broker: Broker, node: str, password: str, mqtt5: bool = True) -> mqtt.Client:
    """A connected client with the node's credentials (retries while the broker reloads)."""
    deadline = time.monotonic() + 10
    while True:
        client, rc = try_connect(broker, node, password, node, mqtt5)
        if rc is not None and not getattr(rc, "is_failure", True):
            return client
        client.loop_stop()
        client.disconnect()
        if time.monotonic() > deadline:
            raise AssertionError(f"{node} could not connect: {rc}")
        time.sleep(0.1)


def refused(rc: object) -> bool:
    """Whether a CONNACK reason (or a dropped connection) means 'not allowed in'."""
    return rc is None or rc == "disconnected" or bool(getattr(rc, "is_failure", False))
