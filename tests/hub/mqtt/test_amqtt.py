"""The amqtt fallback broker: authentication required, per-node ACL, ingest over MQTT 3.1.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from hub.mqtt.amqtt_broker import AmqttBroker
from hub.mqtt.hooks import NullHooks
from hub.mqtt.ingest import IngestWorker
from hub.mqtt.publisher import OutboxPublisher, detection_payload
from hub.mqtt.store import count_events
from tests.hub.mqtt.helpers import connect_node, refused, try_connect, wait_for


@pytest.fixture
def amqtt_ingest(amqtt_broker: AmqttBroker, sqlite_engine: Engine) -> Iterator[IngestWorker]:
    worker = IngestWorker(
        amqtt_broker.host,
        amqtt_broker.port,
        amqtt_broker.hub_credentials,
        sqlite_engine,
        mqtt5=False,
        hooks=NullHooks(),
    ).start()
    yield worker
    worker.stop()


def test_amqtt_requires_authentication(amqtt_broker: AmqttBroker) -> None:
    amqtt_broker.set_node_password("node-a", "pw-a")
    for user, password, client_id in (
        (None, None, "anon"),
        ("node-a", "wrong", "node-a"),
        ("node-a", "pw-a", "node-b"),  # a node must use its own id as client id
    ):
        client, rc = try_connect(amqtt_broker, user, password, client_id, mqtt5=False)
        client.loop_stop()
        assert refused(rc), (user, client_id, rc)
    connect_node(amqtt_broker, "node-a", "pw-a", mqtt5=False).disconnect()
    assert amqtt_broker.retained_secrets_safe is False


def test_amqtt_ingest_round_trip_and_acl(
    amqtt_broker: AmqttBroker, amqtt_ingest: IngestWorker, sqlite_engine: Engine
) -> None:
    amqtt_broker.set_node_password("node-a", "pw-a")
    pub = OutboxPublisher(
        amqtt_broker.host, amqtt_broker.port, ("node-a", "pw-a"), ["node-a"], mqtt5=False
    ).start()
    try:
        pub.client.publish("sw/v1/nodes/node-b/events", detection_payload("node-b", 1, 0), 1)
        for seq in range(5):
            pub.publish("node-a", seq)
        assert pub.wait_all_acked(30)
        assert pub.last_ack_payload == b'{"boot":1,"seq":4}'
    finally:
        pub.stop()
    assert wait_for(lambda: count_events(sqlite_engine) == 5)
    assert amqtt_ingest.stats.stored == 5  # node-b's event never reached the hub
