"""End-to-end ingest through a real Mosquitto: acks, redeliveries, broker and hub crashes, ACL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, func, select, text
from sqlmodel import Session

from hub.metrics import REGISTRY
from hub.mqtt.hooks import NullHooks
from hub.mqtt.ingest import IngestWorker
from hub.mqtt.models import DeadLetter, MqttEvent
from hub.mqtt.mosquitto import MosquittoBroker
from hub.mqtt.publisher import OutboxPublisher, detection_payload
from hub.mqtt.store import count_events
from hub.mqtt.worker import PASSWORD_ENV
from storewave.wire import HUB_STATUS_TOPIC, Ack, HubState, HubStatus, parse_message
from tests.hub.mqtt.helpers import connect_node, wait_for

pytestmark = pytest.mark.mosquitto

NODES = [f"node-{i:02d}" for i in range(10)]


@pytest.fixture
def ingest(mosquitto: MosquittoBroker, engine: Engine) -> Iterator[IngestWorker]:
    """An ingest worker on the test broker and database."""
    worker = IngestWorker(
        mosquitto.host, mosquitto.port, mosquitto.hub_credentials, engine, hooks=NullHooks()
    ).start()
    yield worker
    worker.stop()


def distinct_keys(engine: Engine) -> int:
    with Session(engine) as session:
        keys = select(MqttEvent.node, MqttEvent.boot, MqttEvent.seq).distinct().subquery()
        return int(session.execute(select(func.count()).select_from(keys)).scalar_one())


def test_round_trip_acks_with_exact_bytes(
    mosquitto: MosquittoBroker, ingest: IngestWorker, engine: Engine
) -> None:
    mosquitto.set_node_password("node-a", "pw-a")
    connect_node(mosquitto, "node-a", "pw-a").disconnect()  # the account is live
    pub = OutboxPublisher(mosquitto.host, mosquitto.port, ("node-a", "pw-a"), ["node-a"]).start()
    try:
        for seq in range(3):
            pub.publish("node-a", seq)
        assert pub.wait_all_acked(20)
        assert pub.last_ack_payload == b'{"boot":1,"seq":2}'
    finally:
        pub.stop()
    assert count_events(engine) == 3
    stored = REGISTRY.get_sample_value("storewave_ingest_messages_total", {"outcome": "stored"})
    assert stored is not None and stored >= 3  # exported in the hub's /metrics registry


def test_duplicates_and_redeliveries_stored_once(
    mosquitto: MosquittoBroker, ingest: IngestWorker, engine: Engine
) -> None:
    pub = OutboxPublisher(
        mosquitto.host, mosquitto.port, mosquitto.hub_credentials, NODES, client_id="pub"
    ).start()
    try:
        pub.publish_range(20)
        for _ in range(2):  # the node resends everything, twice, as after lost acks
            for node in NODES:
                for seq in range(20):
                    pub.client.publish(
                        f"sw/v1/nodes/{node}/events", detection_payload(node, 1, seq), qos=1
                    )
        assert pub.wait_all_acked(30)
        assert wait_for(lambda: ingest.stats.stored + ingest.stats.duplicates >= 600)
    finally:
        pub.stop()
    assert count_events(engine) == distinct_keys(engine) == 200
    assert ingest.stats.stored == 200 and ingest.stats.duplicates >= 400


def test_hub_status_online_then_offline(mosquitto: MosquittoBroker, engine: Engine) -> None:
    seen: list[bytes] = []
    worker = IngestWorker(
        mosquitto.host, mosquitto.port, mosquitto.hub_credentials, engine, hooks=NullHooks()
    ).start()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="status-watch", protocol=mqtt.MQTTv5
    )
    client.username_pw_set(*mosquitto.hub_credentials)
    client.on_message = lambda _c, _u, m: seen.append(bytes(m.payload))
    client.connect(mosquitto.host, mosquitto.port)
    client.subscribe(HUB_STATUS_TOPIC, 1)
    client.loop_start()
    try:
        assert wait_for(lambda: bool(seen))
        assert parse_message(HubStatus, seen[-1]).state == HubState.ONLINE
        worker.stop()
        assert wait_for(lambda: parse_message(HubStatus, seen[-1]).state == HubState.OFFLINE)
    finally:
        client.loop_stop()
        client.disconnect()


def _publish_in_background(pub: OutboxPublisher, per_node: int) -> threading.Thread:
    thread = threading.Thread(target=pub.publish_range, args=(per_node,), daemon=True)
    thread.start()
    return thread


def test_broker_killed_mid_stream_loses_nothing(
    mosquitto: MosquittoBroker, ingest: IngestWorker, engine: Engine
) -> None:
    pub = OutboxPublisher(
        mosquitto.host, mosquitto.port, mosquitto.hub_credentials, NODES, client_id="pub"
    ).start()
    try:
        sender = _publish_in_background(pub, 200)
        assert wait_for(lambda: count_events(engine) >= 200)
        old_pid = mosquitto.pid
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        assert wait_for(lambda: mosquitto.restarts == 1 and mosquitto.pid != old_pid)
        sender.join(30)
        assert pub.wait_all_acked(60, resend_after_s=1.0)
    finally:
        pub.stop()
    assert count_events(engine) == distinct_keys(engine) == 2000


def _start_worker_process(broker: MosquittoBroker, db_url: str) -> subprocess.Popen[str]:
    env = dict(os.environ, **{PASSWORD_ENV: broker.hub_credentials[1]})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hub.mqtt.worker",
            "--port",
            str(broker.port),
            "--username",
            broker.hub_credentials[0],
            "--database-url",
            db_url,
            "--no-hooks",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ingest-ready"
    return proc


def test_hub_killed_minus_9_then_restarted(
    mosquitto: MosquittoBroker, engine: Engine, tmp_path: Path
) -> None:
    db_url = engine.url.render_as_string(hide_password=False)
    worker = _start_worker_process(mosquitto, db_url)
    pub = OutboxPublisher(
        mosquitto.host, mosquitto.port, mosquitto.hub_credentials, NODES, client_id="pub"
    ).start()
    try:
        sender = _publish_in_background(pub, 300)
        assert wait_for(lambda: count_events(engine) >= 300)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        unacked_at_kill = pub.pending()
        sender.join(30)
        worker = _start_worker_process(mosquitto, db_url)
        assert pub.wait_all_acked(60, resend_after_s=1.0)
    finally:
        pub.stop()
        worker.terminate()
        worker.wait(20)
    assert unacked_at_kill > 0  # it died with work in flight: the resends were needed
    assert count_events(engine) == distinct_keys(engine) == 3000


def _hub_publish(broker: MosquittoBroker, topic: str, payload: bytes) -> None:
    """Publish one retained QoS 1 message with the hub's account."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="hub-test-pub", protocol=mqtt.MQTTv5
    )
    client.username_pw_set(*broker.hub_credentials)
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def test_a_node_cannot_publish_as_another(
    mosquitto: MosquittoBroker, ingest: IngestWorker, engine: Engine
) -> None:
    mosquitto.set_node_password("node-a", "pw-a")
    mosquitto.set_node_password("node-b", "pw-b")
    node_a = connect_node(mosquitto, "node-a", "pw-a")
    try:
        refused = node_a.publish("sw/v1/nodes/node-b/events", detection_payload("node-b", 1, 0), 1)
        refused.wait_for_publish(10)
        node_a.publish("sw/v1/nodes/node-a/events", detection_payload("node-a", 1, 0), 1)
        assert wait_for(lambda: count_events(engine) == 1)
        # Mosquitto grants the subscription but never delivers what the ACL denies.
        received: list[str] = []
        node_a.on_message = lambda _c, _u, m: received.append(m.topic)
        node_a.subscribe([("sw/v1/nodes/node-b/config", 1), ("sw/v1/nodes/node-a/config", 1)])
        _hub_publish(mosquitto, "sw/v1/nodes/node-b/config", b"{}")
        _hub_publish(mosquitto, "sw/v1/nodes/node-a/config", b"{}")
        assert wait_for(lambda: bool(received))
        assert received == ["sw/v1/nodes/node-a/config"]
    finally:
        node_a.loop_stop()
        node_a.disconnect()
    with Session(engine) as session:
        nodes = list(session.execute(select(MqttEvent.node)).scalars())
        dead = session.execute(select(func.count()).select_from(DeadLetter)).scalar_one()
    assert nodes == ["node-a"] and dead == 0  # the broker dropped it before the hub


def test_no_anonymous_access(mosquitto: MosquittoBroker) -> None:
    from tests.hub.mqtt.helpers import refused, try_connect

    for user, password in ((None, None), ("node-z", "guess"), (mosquitto.hub_credentials[0], "x")):
        client, rc = try_connect(mosquitto, user, password, "intruder")
        client.loop_stop()
        assert refused(rc), (user, rc)


def test_engine_fixture_is_isolated(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM mqtt_event")).scalar_one() == 0


def test_a_draining_node_is_acked_every_few_hundred_events_not_every_two_seconds(
    mosquitto: MosquittoBroker, engine: Engine
) -> None:
    """Coalesced acks must not throttle a node emptying its backlog (window 1,000)."""
    from hub.mqtt.ingest import ACK_EARLY_SEQS

    worker = IngestWorker(  # not started: the test drives its ack flushing itself
        mosquitto.host, mosquitto.port, mosquitto.hub_credentials, engine, hooks=NullHooks()
    )
    seen: list[bytes] = []
    watch = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ack-watch")
    watch.username_pw_set(*mosquitto.hub_credentials)
    watch.on_message = lambda _c, _u, m: seen.append(bytes(m.payload))
    watch.connect(mosquitto.host, mosquitto.port)
    watch.subscribe("sw/v1/nodes/node-a/ack", 1)
    watch.loop_start()
    worker.client.connect(mosquitto.host, mosquitto.port)
    worker.client.loop_start()
    try:
        key = ("node-a", 1)
        for seq in (10, 10 + ACK_EARLY_SEQS - 1, 10 + ACK_EARLY_SEQS, 11 + ACK_EARLY_SEQS):
            worker._pending_acks[key] = seq
            worker._flush_acks()
        assert wait_for(lambda: len(seen) >= 2)
        worker._flush_acks(force=True)  # the one held back goes out when forced (idle)
        assert wait_for(lambda: len(seen) >= 3)
    finally:
        worker.client.loop_stop()
        worker.client.disconnect()
        watch.loop_stop()
        watch.disconnect()
    sent = [parse_message(Ack, p).seq for p in seen]
    # 10 at once; 259 held (recent and near); 260 at once (far); 261 held until forced.
    assert sent == [10, 10 + ACK_EARLY_SEQS, 11 + ACK_EARLY_SEQS]
