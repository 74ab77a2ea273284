"""Two ingest workers sharing one MQTT 5 shared subscription: every event once, acks exact."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from hub.mqtt.hooks import NullHooks
from hub.mqtt.ingest import IngestWorker
from hub.mqtt.mosquitto import MosquittoBroker
from hub.mqtt.publisher import OutboxPublisher
from hub.mqtt.store import count_events

pytestmark = pytest.mark.mosquitto


def test_shared_subscription_splits_load_without_doubles(
    mosquitto: MosquittoBroker, sqlite_engine: Engine
) -> None:
    workers = [
        IngestWorker(mosquitto.host, mosquitto.port, mosquitto.hub_credentials, sqlite_engine,
                     client_id=f"ingest-{i}", hooks=NullHooks(), publish_hub_status=i == 0).start()
        for i in range(2)
    ]
    nodes = [f"node-{i:02d}" for i in range(5)]
    pub = OutboxPublisher(mosquitto.host, mosquitto.port, mosquitto.hub_credentials, nodes,
                          client_id="pub").start()
    try:
        pub.publish_range(100)
        assert pub.wait_all_acked(60, resend_after_s=5.0)  # acks reach the top seq per node
    finally:
        pub.stop()
        for worker in workers:
            worker.stop()
    assert count_events(sqlite_engine) == 500
    assert all(w.stats.stored > 0 for w in workers)  # the broker really shared the load
    assert sum(w.stats.stored for w in workers) == 500
