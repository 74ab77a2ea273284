"""Fixtures of the edge fault tests: a real Mosquitto holding one node's account, the hub's
ingest into a fresh SQLite database, and a TCP link between node and broker the test can cut.

A module using them defines ``node_account`` -> ``(node_id, password)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from hub.db import make_engine
from hub.mqtt.broker import free_port
from hub.mqtt.hooks import NullHooks
from hub.mqtt.ingest import IngestWorker
from hub.mqtt.mosquitto import MosquittoBroker
from hub.mqtt.schema import upgrade_ingest
from tests.e2e.faults import CuttableLink


@pytest.fixture
def broker(
    mosquitto_bin: str, tmp_path: Path, node_account: tuple[str, str]
) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(tmp_path / "mosquitto", mosquitto_bin, free_port()).start()
    broker.set_node_password(*node_account)
    yield broker
    broker.stop()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    upgrade_ingest(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def ingest(broker: MosquittoBroker, engine: Engine) -> Iterator[IngestWorker]:
    worker = IngestWorker(
        broker.host, broker.port, broker.hub_credentials, engine, hooks=NullHooks()
    ).start()
    yield worker
    worker.stop()


@pytest.fixture
def uplink(broker: MosquittoBroker) -> Iterator[CuttableLink]:
    link = CuttableLink(broker.host, broker.port)
    yield link
    link.close()
