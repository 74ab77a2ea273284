"""Fault: the edge node's disk fills up while its uplink is down.

The real edge agent keeps its outbox on a real 1 MiB file system (tmpfs), so the disk
fills with a real ENOSPC. While the link is cut, hearings and heartbeats queue until the
disk is full; the outbox says so in an error log line, sheds the unsent heartbeats and
keeps every detection. When the link comes back the node drains by itself through the
real Mosquitto and hub ingest: every detection stored exactly once, the outbox intact,
the disk-full episode over, and a fresh hearing acked.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from edge.agent.agent import Agent
from edge.agent.link import Backoff
from edge.agent.outbox import EventKind
from edge.agent.settings import AgentOptions
from edge.audio.sources import ArraySource
from edge.modem.codes import to_hex
from edge.modem.detector import StreamingDetector
from hub.mqtt.ingest import IngestWorker
from hub.mqtt.models import DeadLetter, MqttEvent
from hub.mqtt.mosquitto import MosquittoBroker
from storewave.wire import NodeLeaf, TelemetryEvent
from tests.e2e.faults import CuttableLink, tiny_filesystem, wait_for
from tests.edge.agent.helpers import Heard, token

pytestmark = pytest.mark.mosquitto

NODE, PASSWORD = "store-0043-n1", "store-0043-n1-password"
# About a thousand queued events fill it (the outbox, its log and its reserve).
DISK_BYTES = 1024 * 1024
# Hearings and heartbeats alternate, as over an outage long enough to fill the disk.
BATCH = 20
# Hearings after the disk filled: they fit in the room the shed heartbeats left.
AFTER_FULL = 40
TIMEOUT_S = 60.0


@pytest.fixture
def node_account() -> tuple[str, str]:
    return NODE, PASSWORD


@pytest.fixture
def agent(uplink: CuttableLink) -> Iterator[Agent]:
    with tiny_filesystem(DISK_BYTES) as disk:
        options = AgentOptions(
            node_id=NODE,
            password=PASSWORD,
            broker_url=uplink.url,
            data_dir=disk / "node",
            sample_rate=48000,
        )
        node = Agent(options, ArraySource(np.zeros(0, np.float32), 48000), StreamingDetector(48000))
        # Reconnect within a second of the link coming back (the real cap is 60 s).
        node.link._backoff = Backoff(base_s=0.1, cap_s=1.0, rng=random.Random(12))
        node.start()
        yield node
        node.stop(flush_timeout_s=0.5)


def _on_agent_thread(agent: Agent, work: object) -> None:
    """Run ``work`` on the agent thread (the outbox's only writer) and wait for it."""
    done = threading.Event()

    def call() -> None:
        work()  # type: ignore[operator]
        done.set()

    agent.inbox.put(("call", call))
    assert done.wait(TIMEOUT_S), "the agent thread did not run the call"


def _heartbeat(agent: Agent) -> None:
    """What the agent's heartbeat timer stores every period (an outage's worth, sooner)."""
    event = agent._envelope(TelemetryEvent, agent.telemetry_body())
    agent._store(event, EventKind.TELEMETRY, NodeLeaf.TELEMETRY)


def _stored(engine: Engine) -> int:
    """How many detections of the node the hub has stored (cheap: polled)."""
    with Session(engine) as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(MqttEvent)
                .where(MqttEvent.node == NODE, MqttEvent.type == "detection")
            ).scalar_one()
        )


def _stored_detection_codes(engine: Engine) -> list[str]:
    with Session(engine) as session:
        bodies = session.execute(
            select(MqttEvent.body).where(MqttEvent.node == NODE, MqttEvent.type == "detection")
        ).scalars()
        return [b["code"] for b in bodies]


def test_disk_full_keeps_detections_over_telemetry_and_recovers(
    broker: MosquittoBroker,
    ingest: IngestWorker,
    engine: Engine,
    uplink: CuttableLink,
    agent: Agent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wait_for(lambda: agent.link.connected, 30, "the node to connect")
    uplink.cut()
    wait_for(lambda: not agent.link.connected, 30, "the node to notice its link is down")

    heard = heartbeats = 0
    with caplog.at_level(logging.ERROR, logger="edge.agent.outbox"):
        while not agent.outbox.disk_full:
            assert heard < 20_000, "the disk never filled"
            for _ in range(BATCH):
                agent.post_detection(Heard(token(heard)))
                heard += 1
                _on_agent_thread(agent, lambda: _heartbeat(agent))
                heartbeats += 1
        for _ in range(AFTER_FULL):
            agent.post_detection(Heard(token(heard)))
            heard += 1
        _on_agent_thread(agent, lambda: None)  # every hearing above has been handled
    assert "disk full; shedding unsent telemetry, keeping detections" in caplog.text
    assert agent.frames_heard == heard
    kinds = dict(
        agent.outbox._db.execute("SELECT kind, count(*) FROM outbox GROUP BY kind").fetchall()
    )
    assert kinds.get("detection") == heard  # every detection kept on the full disk
    shed = agent.outbox.dropped_total
    assert 0 < shed <= heartbeats and shed == heartbeats - kinds.get("telemetry", 0)

    uplink.restore()  # nothing else: the node drains and leaves the episode by itself
    wait_for(lambda: _stored(engine) >= heard, TIMEOUT_S, "the backlog")
    wait_for(agent.drained, TIMEOUT_S, "the hub's acks to empty the outbox")
    codes = _stored_detection_codes(engine)
    assert len(codes) == heard and set(codes) == {to_hex(token(i)) for i in range(heard)}
    with Session(engine) as session:
        dead = session.execute(select(func.count()).select_from(DeadLetter)).scalar_one()
    assert dead == 0
    assert not agent.outbox.disk_full
    with sqlite3.connect(agent.outbox.path) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    agent.post_detection(Heard(token(heard)))
    wait_for(lambda: _stored(engine) == heard + 1, 30, "a fresh event")
    wait_for(agent.drained, 30, "the fresh event's ack")
    assert agent.link.connected and ingest.connected
