"""Fault: PostgreSQL restarted under load (node events streaming in, phones checking in).

A whole hub (managed Mosquitto, ingest, timers, HTTP API) runs on a throwaway PostgreSQL
cluster the test owns (never the machine's shared server). Mid-stream the cluster is
stopped with ``pg_ctl -m fast`` (every session cut, open transactions rolled back) and
started again. Nobody touches the hub: the ingest keeps its uncommitted batch
unacknowledged and retries, the API's pool drops dead connections (pre-ping), and the
phones retry what failed, as the app does. After: every event stored exactly once,
every phone checked in exactly once (one visit each), the hub ready again; while the
database is down the API answers 503 with Retry-After, not a bare 500.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from edge.modem.codes import beacon_code, slot_of, to_hex
from hub.embedded import EmbeddedHub, start_embedded_hub
from hub.models.checkins import Visit
from hub.models.registry import Beacon, Store
from hub.mqtt.models import DeadLetter, MqttEvent
from hub.mqtt.publisher import OutboxPublisher
from storewave.demo import demo_phone_number
from storewave.demo_world import sign_in_phone
from tests.e2e.faults import not_runnable, wait_for
from tests.e2e.pgcluster import ClusterUnavailable, ThrowawayPostgres

pytestmark = pytest.mark.mosquitto

NODES = 6
EVENTS_PER_NODE = 150
PHONES_BEFORE, PHONES_AFTER = 3, 6
# The stream is paced so it is still running when the database goes away.
ROUND_PAUSE_S = 0.01
# How long the database stays down: long enough for every part to hit the outage.
DOWN_S = 2.0
RECOVERY_TIMEOUT_S = 60.0
# A phone retries a failed check-in after this long (the app backs off similarly).
PHONE_RETRY_S = 0.3


@pytest.fixture
def cluster() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL cluster of our own, or a loud skip (a failure on CI) when impossible."""
    try:
        pg = ThrowawayPostgres()
    except ClusterUnavailable as exc:
        not_runnable(f"PostgreSQL restart fault test NOT RUN: {exc}")
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
def hub(cluster: ThrowawayPostgres, tmp_path: Path, mosquitto_bin: str) -> Iterator[EmbeddedHub]:
    hub = start_embedded_hub(tmp_path / "hub", broker="mosquitto", database_url=cluster.url)
    yield hub
    hub.stop()


def _open_stores(hub: EmbeddedHub) -> tuple[int, bytes]:
    """Make every store open around the clock; return one beacon's short id and key."""
    with Session(hub.engine) as session:
        for store in session.execute(select(Store)).scalars():
            store.opening_hours, store.capacity = {}, 100_000
            session.add(store)
        beacon = session.execute(select(Beacon).order_by(Beacon.short_id)).scalars().first()
        assert beacon is not None
        short_id, key = beacon.short_id, bytes.fromhex(hub.crypto.decrypt(beacon.key_enc))
        session.commit()
    return short_id, key


def _checkin(phone: httpx.Client, short_id: int, key: bytes, device: str) -> int:
    """One check-in with a live code; the status, or 0 when no answer came."""
    now = time.time()
    body = {
        "code": to_hex(beacon_code(short_id, key, slot_of(now))),
        "heard_at": datetime.fromtimestamp(now, UTC).isoformat(),
        "snr_db": 15.0,
        "device_id": device,
    }
    try:
        return phone.post("/v1/checkins", json=body).status_code
    except httpx.HTTPError:
        return 0


def _check_in_until_accepted(
    phone: httpx.Client, short_id: int, key: bytes, device: str, statuses: list[int]
) -> None:
    """What the app does: retry a check-in that got no verdict until one comes (bounded)."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while True:
        status = _checkin(phone, short_id, key, device)
        statuses.append(status)
        if status == 200 or time.monotonic() > deadline:
            return
        time.sleep(PHONE_RETRY_S)


def _stream(pub: OutboxPublisher, outage: threading.Event, stop: threading.Event) -> None:
    """Publish EVENTS_PER_NODE events per node, a round at a time; the second half only
    once the database is going down, so it is sent during the outage and after it."""
    for seq in range(EVENTS_PER_NODE):
        if seq == EVENTS_PER_NODE // 2:
            outage.wait(RECOVERY_TIMEOUT_S)
        if stop.is_set():
            return
        for node in pub.nodes:
            pub.publish(node, seq)
        time.sleep(ROUND_PAUSE_S)


def test_postgres_restarted_under_load_loses_and_doubles_nothing(
    hub: EmbeddedHub, cluster: ThrowawayPostgres
) -> None:
    short_id, key = _open_stores(hub)
    phones = [
        sign_in_phone(hub, demo_phone_number(77, i), device_id=f"fault-phone-{i}")
        for i in range(PHONES_BEFORE + PHONES_AFTER)
    ]
    nodes = sorted(hub.seeds.node_passwords)[:NODES]
    broker = hub.runtime.broker
    assert broker is not None and len(nodes) == NODES
    pub = OutboxPublisher(broker.host, broker.port, broker.hub_credentials, nodes,
                          client_id="fault-pg-pub").start()
    outage, stop = threading.Event(), threading.Event()
    sender = threading.Thread(target=_stream, args=(pub, outage, stop), daemon=True)
    statuses: list[int] = []
    try:
        sender.start()
        for i in range(PHONES_BEFORE):
            assert _checkin(phones[i], short_id, key, f"fault-phone-{i}") == 200
        wait_for(lambda: _events(hub) >= 100, 30, "the stream to reach the database")

        cluster.stop("fast")
        down_at = time.monotonic()
        outage.set()
        retriers = [
            threading.Thread(
                target=_check_in_until_accepted,
                args=(phones[i], short_id, key, f"fault-phone-{i}", statuses),
                daemon=True,
            )
            for i in range(PHONES_BEFORE, PHONES_BEFORE + PHONES_AFTER)
        ]
        for thread in retriers:
            thread.start()
        with httpx.Client(base_url=hub.url, timeout=10) as anon:
            ready = anon.get("/readyz")
        assert ready.status_code == 503  # the hub says what is wrong instead of hanging
        time.sleep(max(0.0, DOWN_S - (time.monotonic() - down_at)))
        waiting_at_restart = pub.pending()
        cluster.start()  # the only action taken: the database comes back

        for thread in retriers:
            thread.join(RECOVERY_TIMEOUT_S)
        sender.join(RECOVERY_TIMEOUT_S)
        assert pub.wait_all_acked(RECOVERY_TIMEOUT_S, resend_after_s=5.0)
    finally:
        stop.set()
        pub.stop()
        for phone in phones:
            phone.close()

    # The outage was felt by the phones, as a clear "unavailable, retry" (never a bare 500).
    assert set(statuses) == {200, 503}
    assert waiting_at_restart > 0  # events were waiting on the database when it came back
    assert statuses.count(200) == PHONES_AFTER  # then every one of them got in
    total = NODES * EVENTS_PER_NODE
    with Session(hub.engine) as session:
        rows = session.execute(
            select(func.count()).select_from(MqttEvent).where(MqttEvent.node.in_(nodes))
        ).scalar_one()
        keys = session.execute(
            select(func.count()).select_from(
                select(MqttEvent.node, MqttEvent.boot, MqttEvent.seq)
                .where(MqttEvent.node.in_(nodes))
                .distinct()
                .subquery()
            )
        ).scalar_one()
        visits = session.execute(
            select(Visit.customer_id, func.count()).group_by(Visit.customer_id)
        ).all()
        dead = session.execute(select(func.count()).select_from(DeadLetter)).scalar_one()
    assert rows == keys == total  # none lost, none counted twice
    assert len(visits) == len(phones) and all(n == 1 for _, n in visits)
    assert dead == 0
    with httpx.Client(base_url=hub.url, timeout=10) as anon:
        assert anon.get("/readyz").status_code == 200
    assert all(worker.connected for worker in hub.runtime.ingest)


def _events(hub: EmbeddedHub) -> int:
    """Rows in the ingest's event table (0 while the database is unreachable)."""
    with Session(hub.engine) as session:
        return int(session.execute(select(func.count()).select_from(MqttEvent)).scalar_one())
