"""Fault: an edge node offline for an hour with 10,000 events queued, then reconnecting.

The real edge agent (outbox, publisher, MQTT link) talks to a real Mosquitto through a
TCP link the test can cut; the real hub ingest commits to SQLite and acks. The link is
cut while the broker and the hub keep running (one store losing its line), 10,000
hearings are queued in the node's outbox, the link comes back, and the node drains by
itself: every event stored exactly once, no seq gap, no dead letter, the node online.

An hour is simulated, not waited: 10,000 events are what a busy node (about three
hearings a second) queues in an hour, and after an hour of failed attempts the link's
reconnect back-off sits at its cap, which the test scales from 60 s to 1 s so CI waits
seconds for the reconnect instead of up to a minute.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from edge.agent.agent import Agent
from edge.agent.link import Backoff
from edge.agent.settings import AgentOptions
from edge.audio.sources import ArraySource
from edge.modem.codes import to_hex
from edge.modem.detector import StreamingDetector
from hub.mqtt.ingest import IngestWorker
from hub.mqtt.models import DeadLetter, MqttEvent, MqttSeqGap
from hub.mqtt.mosquitto import MosquittoBroker
from storewave.wire import NodeLeaf, NodeState, NodeStatus, node_topic, parse_message
from tests.e2e.faults import CuttableLink, wait_for
from tests.edge.agent.helpers import Heard, token

pytestmark = pytest.mark.mosquitto

NODE, PASSWORD = "store-0042-n1", "store-0042-n1-password"
ONLINE_BEFORE = 100
QUEUED_OFFLINE = 10_000
# Bounds for CI: queueing 10,000 events (one fsync each) and draining them at the
# node's 2,500/s rate limit take seconds; these leave room for a contended machine.
QUEUE_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 60.0
# The back-off cap after an hour of failures, scaled down (see the module docstring).
SCALED_BACKOFF_CAP_S = 1.0
SHM = Path("/dev/shm")


@pytest.fixture
def node_account() -> tuple[str, str]:
    return NODE, PASSWORD


@pytest.fixture
def node_dir(tmp_path: Path) -> Iterator[Path]:
    """The node's data folder, in memory when the machine has /dev/shm: the outbox syncs
    every event to disk (about 2 ms each on a busy CI disk, 20 s for 10,000), and what
    this test proves is the protocol, not the flash's write speed."""
    if SHM.is_dir():
        path = Path(tempfile.mkdtemp(prefix="sw-fault-node-", dir=SHM))
        yield path
        shutil.rmtree(path, ignore_errors=True)
    else:
        yield tmp_path / "node"


@pytest.fixture
def agent(uplink: CuttableLink, node_dir: Path) -> Iterator[Agent]:
    options = AgentOptions(
        node_id=NODE,
        password=PASSWORD,
        broker_url=uplink.url,
        data_dir=node_dir,
        sample_rate=48000,
    )
    node = Agent(options, ArraySource(np.zeros(0, np.float32), 48000), StreamingDetector(48000))
    node.link._backoff = Backoff(base_s=0.1, cap_s=SCALED_BACKOFF_CAP_S, rng=random.Random(11))
    node.start()
    yield node
    node.stop(flush_timeout_s=0.5)


def _detections(engine: Engine) -> tuple[int, int, set[str]]:
    """(rows, distinct (boot, seq), the codes) of the node's stored detections."""
    with Session(engine) as session:
        rows = session.execute(
            select(MqttEvent.boot, MqttEvent.seq, MqttEvent.body).where(
                MqttEvent.node == NODE, MqttEvent.type == "detection"
            )
        ).all()
    return len(rows), len({(r[0], r[1]) for r in rows}), {r[2]["code"] for r in rows}


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


def _retained_status(broker: MosquittoBroker) -> NodeStatus:
    """The node's retained status as the broker holds it now."""
    seen: list[bytes] = []
    got = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="status-probe")
    client.username_pw_set(*broker.hub_credentials)

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        seen.append(bytes(msg.payload))
        got.set()

    client.on_message = on_message
    client.on_connect = lambda c, *_a: c.subscribe(node_topic(NODE, NodeLeaf.STATUS), 1)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert got.wait(10), "no retained status for the node"
    finally:
        client.loop_stop()
        client.disconnect()
    return parse_message(NodeStatus, seen[-1])


def test_node_offline_an_hour_with_10000_queued_drains_exactly_once(
    broker: MosquittoBroker,
    ingest: IngestWorker,
    engine: Engine,
    uplink: CuttableLink,
    agent: Agent,
) -> None:
    wait_for(lambda: agent.link.connected, 30, "the node to connect")
    for i in range(ONLINE_BEFORE):
        agent.post_detection(Heard(token(i)))
    wait_for(lambda: _stored(engine) == ONLINE_BEFORE, 30, "the online events")
    wait_for(agent.drained, 30, "the hub's ack of the online events")

    uplink.cut()
    wait_for(lambda: not agent.link.connected, 30, "the node to notice its link is down")
    for i in range(ONLINE_BEFORE, ONLINE_BEFORE + QUEUED_OFFLINE):
        agent.post_detection(Heard(token(i)))
    wait_for(lambda: agent.outbox.depth >= QUEUED_OFFLINE, QUEUE_TIMEOUT_S, "10,000 queued events")
    assert not agent.link.connected and agent.link.connects == 1
    assert _stored(engine) == ONLINE_BEFORE  # nothing leaked past the cut link
    assert agent.outbox.dropped_total == 0  # 10,000 is under the soft cap: nothing shed

    uplink.restore()  # no other step: the node finds its way back by itself
    total = ONLINE_BEFORE + QUEUED_OFFLINE
    wait_for(lambda: _stored(engine) >= total, DRAIN_TIMEOUT_S, "the backlog at the hub")
    wait_for(agent.drained, DRAIN_TIMEOUT_S, "the hub's acks to empty the outbox")

    rows, keys, codes = _detections(engine)
    assert rows == keys == total  # none counted twice
    assert codes == {to_hex(token(i)) for i in range(total)}  # none lost
    with Session(engine) as session:
        open_gaps = session.execute(
            select(func.count()).select_from(MqttSeqGap).where(MqttSeqGap.closed_at.is_(None))
        ).scalar_one()
        dead = session.execute(select(func.count()).select_from(DeadLetter)).scalar_one()
    assert open_gaps == 0 and dead == 0

    # Healthy without a manual step: reconnected once, online at the broker, and a new
    # hearing goes straight through and is acked.
    assert agent.link.connected and agent.link.connects >= 2
    status = _retained_status(broker)
    assert status.state == NodeState.ONLINE and status.boot == agent.boot
    agent.post_detection(Heard(token(total)))
    wait_for(lambda: _stored(engine) == total + 1, 30, "a fresh event after recovery")
    wait_for(agent.drained, 30, "the fresh event's ack")
    assert ingest.connected and ingest.stats.dead == 0
