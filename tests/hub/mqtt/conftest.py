"""Fixtures for the MQTT suites: a real Mosquitto (and amqtt) per test, SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from hub.db import make_engine
from hub.mqtt.amqtt_broker import AmqttBroker
from hub.mqtt.broker import free_port
from hub.mqtt.mosquitto import MosquittoBroker
from hub.mqtt.schema import upgrade_ingest


@pytest.fixture
def mosquitto(mosquitto_bin: str, tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A managed Mosquitto on a free loopback port, stopped after the test."""
    broker = MosquittoBroker(tmp_path / "mosquitto", mosquitto_bin, free_port()).start()
    yield broker
    broker.stop()


@pytest.fixture
def amqtt_broker(tmp_path: Path) -> Iterator[AmqttBroker]:
    """A managed amqtt broker (child process) on a free loopback port."""
    broker = AmqttBroker(tmp_path / "amqtt", free_port()).start()
    yield broker
    broker.stop()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh SQLite file with the ingest tables."""
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    upgrade_ingest(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def pg_database(pg_url: str) -> Iterator[str]:
    """A private PostgreSQL database for this session (``sw_ingest_<pid>``), dropped after."""
    name = f"sw_ingest_{os.getpid()}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_engine(pg_database: str) -> Iterator[Engine]:
    """The private PostgreSQL database with empty ingest tables."""
    engine = make_engine(pg_database)
    upgrade_ingest(engine)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE mqtt_event, dead_letter, mqtt_cursor, mqtt_seq_gap"))
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Each test that takes ``engine`` runs on SQLite and on PostgreSQL."""
    name = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]
