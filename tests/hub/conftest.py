"""Hub fixtures: a migrated database per backend (SQLite and PostgreSQL), the app, a clock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect, make_url, text
from sqlmodel import Session, SQLModel

import hub.models  # noqa: F401  (all tables on the metadata)
from hub.app import create_app
from hub.clock import ManualClock
from hub.db import make_engine, migrate
from storewave.settings import HubSettings
from tests.hub.doubles import RecordingNodeControl

# Monday 2026-11-30 11:00 in Asia/Shanghai: every seeded store is open.
START = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
TEST_SECRET = "hub-test-secret-0123456789abcdef-not-for-production"


def _admin_conninfo(url: str) -> tuple[str, str]:
    """A libpq conninfo for the server's maintenance database, and the server's URL."""
    parsed = make_url(url)
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    return conninfo, parsed.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_hub_url(pg_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    conninfo, _ = _admin_conninfo(pg_url)
    name = f"sw_hubapi_{os.getpid()}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A migrated engine on each backend, shared by the session (tables emptied per test)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('hubdb') / 'hub.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_hub_url")
    engine = make_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()


def empty_tables(engine: Engine) -> None:
    """Delete every row of every table (faster than re-migrating per test)."""
    # Only tables the migrations created: other parts' models may be imported but not migrated.
    existing = set(inspect(engine).get_table_names())
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables) if t.name in existing]
    with Session(engine) as session:
        if engine.dialect.name == "postgresql":
            quoted = ", ".join(f'"{t}"' for t in tables)
            session.exec(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))  # type: ignore[call-overload]
        else:
            for table in tables:
                session.exec(text(f'DELETE FROM "{table}"'))  # type: ignore[call-overload]
        session.commit()


@pytest.fixture
def engine(backend_engine: Engine) -> Engine:
    """The session's engine, emptied for this test."""
    empty_tables(backend_engine)
    return backend_engine


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test says so."""
    return ManualClock(START)


@pytest.fixture
def node_control() -> RecordingNodeControl:
    """The recording NodeControl double."""
    return RecordingNodeControl()


@pytest.fixture
def settings(tmp_path: Path) -> HubSettings:
    """Hub settings with a fixed secret and a private data dir."""
    return HubSettings(data_dir=tmp_path / "hub", secret_key=TEST_SECRET)


@pytest.fixture
def client(
    settings: HubSettings, engine: Engine, clock: ManualClock, node_control: RecordingNodeControl
) -> Iterator[TestClient]:
    """The real app over HTTP (in-process transport) on the test's database."""
    app = create_app(settings, clock=clock, node_control=node_control, engine=engine)
    with TestClient(app) as test_client:
        yield test_client
