"""Two ingest writers locking node rows in opposite orders: PostgreSQL aborts one, nothing is lost.

With MQTT 5 shared subscriptions two hub workers get messages of the same nodes; each
batch touches the nodes' rows in the order its messages came, so two batches can wait on
each other. PostgreSQL then aborts one transaction (deadlock, SQLSTATE 40P01). The writer
re-runs such a batch at once (it is not an outage) and the events are stored exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlmodel import Session

from hub.db import make_engine, migrate, session_scope
from hub.models.registry import Node
from hub.mqtt.hooks import default_hooks
from hub.mqtt.models import DeadLetter, MqttEvent
from hub.mqtt.publisher import detection_payload
from hub.mqtt.store import BatchWriter, Incoming
from hub.security import HubCrypto
from hub.seed import load_seeds
from storewave.wire import utc_now
from tests.hub.conftest import empty_tables

FIRST, SECOND = "fz-gulou-n1", "fz-gulou-n2"


@pytest.fixture
def pg_engine(pg_hub_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_hub_url)
    migrate(engine)
    empty_tables(engine)
    with session_scope(engine) as session:
        load_seeds(session, crypto=HubCrypto(b"k" * 32))
    yield engine
    engine.dispose()


def _wait_until_blocked(conninfo: str, own_pid: int, timeout_s: float = 10.0) -> None:
    """Until another backend waits on a row lock (the writer, blocked by our lock)."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(conninfo, autocommit=True) as probe:
        while time.monotonic() < deadline:
            row = probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND pid <> %s AND datname = current_database()",
                (own_pid,),
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the writer never waited on our lock")


def test_deadlocked_batch_is_rerun_and_stored_once(
    pg_engine: Engine, pg_hub_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    now = utc_now()
    batch = [
        Incoming(f"sw/v1/nodes/{FIRST}/events", detection_payload(FIRST, 1, 0), now),
        Incoming(f"sw/v1/nodes/{SECOND}/events", detection_payload(SECOND, 1, 0), now),
    ]
    writer = BatchWriter(pg_engine, default_hooks())
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = writer.write(batch)
        except Exception as exc:  # noqa: BLE001 - the assertion below reports it
            outcome["error"] = exc

    url = make_url(pg_hub_url).set(drivername="postgresql")
    conninfo = url.render_as_string(hide_password=False)
    caplog.set_level(logging.WARNING, logger="hub.mqtt.store")
    with psycopg.connect(conninfo) as other:
        # The other worker: waits long before checking for deadlock, so the writer is
        # the one PostgreSQL aborts (deterministic), then takes SECOND, then FIRST.
        other.execute("SET deadlock_timeout = '20s'")
        other.execute("UPDATE node SET health = health WHERE id = %s", (SECOND,))
        thread = threading.Thread(target=run)
        thread.start()
        _wait_until_blocked(conninfo, other.info.backend_pid)  # writer holds FIRST, wants SECOND
        other.execute("UPDATE node SET health = health WHERE id = %s", (FIRST,))  # the cycle
        other.commit()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert (result.stored, result.dead) == (2, 0)  # type: ignore[attr-defined]
    assert any("lock conflict" in r.getMessage() for r in caplog.records)
    with Session(pg_engine) as session:
        assert session.scalar(select(func.count()).select_from(MqttEvent)) == 2
        assert session.scalar(select(func.count()).select_from(DeadLetter)) == 0
        for node_id in (FIRST, SECOND):
            node = session.get(Node, node_id)
            assert node is not None and node.last_seen_at is not None
