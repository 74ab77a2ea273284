"""Random bytes on every topic a node may publish: dead-lettered, acked, nothing else harmed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from hub.embedded import EmbeddedHub, start_embedded_hub
from hub.mqtt.models import DeadLetter, MqttEvent
from storewave import wire
from storewave.demo_world import wait_for

NODE = "fz-gulou-n1"
# Bounded: enough random payloads to cover empty, short, binary, near-JSON and large.
GARBAGE_PER_TOPIC = 40
WAIT_S = 30.0


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[EmbeddedHub]:
    hub = start_embedded_hub(Path(tmp_path_factory.mktemp("garbage")))
    yield hub
    hub.stop()


def _node_client(hub: EmbeddedHub) -> mqtt.Client:
    broker = hub.runtime.broker
    assert broker is not None
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=NODE)
    client.username_pw_set(NODE, hub.seeds.node_passwords[NODE])
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    assert connected.wait(WAIT_S)
    return client


def _garbage(rng: np.random.Generator) -> list[bytes]:
    out = [b"", b"{}", b"null", b"[]", b'{"v":1}', b"\xff" * 3, b"{" * 5000]
    while len(out) < GARBAGE_PER_TOPIC:
        n = int(rng.integers(1, 2000))
        out.append(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    return out


def _count(hub: EmbeddedHub, model: type, *where: object) -> int:
    with Session(hub.engine) as session:
        return int(
            session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()
        )


def test_random_bytes_on_every_node_topic(hub: EmbeddedHub) -> None:
    client = _node_client(hub)
    rng = np.random.default_rng(11)
    expected_dead = 0
    for leaf in (wire.NodeLeaf.EVENTS, wire.NodeLeaf.TELEMETRY, wire.NodeLeaf.STATUS):
        for payload in _garbage(rng):
            client.publish(wire.node_topic(NODE, leaf), payload, qos=1).wait_for_publish(WAIT_S)
            # An empty status is how MQTT clears a retained message: ignored by design.
            expected_dead += not (leaf is wire.NodeLeaf.STATUS and payload == b"")
    # Every malformed message is dead-lettered (with its reason) rather than lost or
    # looping; the ingest keeps going and still takes a valid event afterwards.
    wait_for(lambda: _count(hub, DeadLetter) >= expected_dead,
             "every garbage message dead-lettered", WAIT_S)
    with Session(hub.engine) as session:
        reasons = session.execute(select(DeadLetter.reason)).scalars().all()
    assert all(reason.strip() for reason in reasons)
    good = wire.TelemetryEvent(
        node=NODE, boot=1, seq=0, body=wire.TelemetryBody(uptime_s=1.0, version="test")
    )
    client.publish(wire.node_topic(NODE, wire.NodeLeaf.TELEMETRY), good.to_bytes(), qos=1)
    wait_for(lambda: _count(hub, MqttEvent, MqttEvent.node == NODE) >= 1, "the valid event",
             WAIT_S)
    client.loop_stop()
    client.disconnect()
    assert _count(hub, DeadLetter) == expected_dead
    with hub.client() as api:
        assert api.get("/readyz").status_code == 200
