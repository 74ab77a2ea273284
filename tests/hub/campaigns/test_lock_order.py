"""An MQTT ingest batch and concurrent check-ins of the same customers: no deadlock, exact caps.

The batch evaluates many customers in one transaction (zone entries heard by a node); a
check-in evaluates one customer it has already locked. Both pay from the same campaign
budget and the same points-expiry timer, so a batch that locked customer A, took those,
and then waited for customer B while B's check-in waited for them would deadlock on
PostgreSQL. Evaluation takes its locks in one order (customers by id, then budgets by
id), so it must not; the caps and the budget must still come out exact.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, text
from sqlmodel import Session, select

from edge.modem.codes import new_phone_token, to_hex
from hub.clock import ManualClock
from hub.models.campaigns import CampaignGrant
from hub.models.checkins import PhoneToken, Visit
from hub.models.customers import Customer
from hub.mqtt.hooks import default_hooks
from hub.mqtt.store import BatchWriter, Incoming
from hub.services import points
from hub.services.campaigns import hooks
from storewave.wire import CodeKind, DetectionBody, DetectionEvent
from tests.hub.campaigns.helpers import GULOU, campaign_row, customer, live_campaign, run_threads
from tests.hub.factories import seed

PHONES_NODE, PHONES_ZONE = "fz-gulou-n2", "fz-gulou-phones"
CUSTOMERS = 24
# The first third also check in; the batch has paid the others by the time it reaches them.
CHECKING_IN = CUSTOMERS // 3
POINTS = 5
BUDGET_GRANTS = 17  # fewer than the customers: the budget runs out mid-race
ROUNDS = 3
# Bounds of the wait for the batch to queue behind a held customer lock (not a timing
# assertion: the test fails only if the batch never waits at all).
LOCK_WAIT_BOUND_S = 60.0
POLL_S = 0.02


def _detection(token: str, seq: int, clock: ManualClock) -> Incoming:
    """The phones-corner node hearing ``token``, as the wire bytes the broker delivers."""
    body = DetectionBody(
        code=token, kind=CodeKind.TOKEN, snr_db=12.0, confidence=0.9, first_heard=clock.now()
    )
    event = DetectionEvent(node=PHONES_NODE, boot=1, seq=seq, ts=clock.now(), body=body)
    return Incoming(f"sw/v1/nodes/{PHONES_NODE}/events", event.to_bytes(), clock.now())


def _wait_for_a_waiter_on(engine: Engine, holder_pid: int, batch_done: threading.Event) -> bool:
    """PostgreSQL: True once another session waits for a lock ``holder_pid`` holds.

    False if the batch finished first (it locked the customer before we did, so we
    got the lock only after its commit and nothing can wait on us any more).
    """
    deadline = time.monotonic() + LOCK_WAIT_BOUND_S
    with engine.connect() as conn:
        while time.monotonic() < deadline and not batch_done.is_set():
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE :holder = ANY(pg_blocking_pids(pid))"
                ),
                {"holder": holder_pid},
            ).scalar_one()
            conn.rollback()
            if waiting:
                return True
            time.sleep(POLL_S)
    if not batch_done.is_set():
        raise AssertionError("the ingest batch neither finished nor waited for the customer")
    return False


def _check_in(
    engine: Engine, clock: ManualClock, cid: str, hold: threading.Event | None = None
) -> bool:
    """What the check-in service does for campaigns: lock the customer, visit, evaluate.

    ``hold`` (the batch's done flag): after locking the customer, wait (PostgreSQL)
    until the ingest batch is blocked on that lock, then evaluate: the moment a wrong
    lock order deadlocks. Returns whether the batch was seen waiting.
    """
    waited = False
    with Session(engine) as session:
        session.exec(select(Customer).where(Customer.id == cid).with_for_update()).one()
        if hold is not None and engine.dialect.name == "postgresql":
            pid = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            waited = _wait_for_a_waiter_on(engine, pid, hold)
        visit = Visit(
            id=f"vis_{cid}_{clock.now().timestamp():.0f}",
            customer_id=cid,
            store_id=GULOU,
            started_at=clock.now(),
            last_seen_at=clock.now(),
        )
        session.add(visit)
        session.flush()
        hooks.on_checkin(session, clock.now(), cid, GULOU, PHONES_ZONE, visit, True)
        session.commit()
    return waited


@pytest.mark.timeout(300)
def test_ingest_batch_and_checkins_neither_deadlock_nor_overrun(
    engine: Engine, clock: ManualClock
) -> None:
    """Each round: one batch hears every customer while a third of them check in at once."""
    seed(engine, clock)
    ids = [f"k{i:02d}" for i in range(CUSTOMERS)]
    for cid in ids:
        customer(engine, clock, cid)
    tokens = {}
    with Session(engine) as session:
        for cid in ids:
            tokens[cid] = to_hex(new_phone_token())
            session.add(
                PhoneToken(
                    token=tokens[cid],
                    customer_id=cid,
                    issued_at=clock.now(),
                    expires_at=clock.now() + timedelta(days=ROUNDS + 1),
                )
            )
        session.commit()
    # Zone entry fires for the node hearing the phone and for a check-in at that zone's
    # beacon: one campaign, one budget, one daily cap shared by both paths.
    zone = live_campaign(
        engine,
        clock,
        trigger="zone_entry",
        where={"zones": [PHONES_ZONE]},
        reward={"kind": "points", "points": POINTS},
        caps={"per_customer_per_day": 1, "budget": BUDGET_GRANTS * POINTS * ROUNDS},
    )
    writer = BatchWriter(engine, default_hooks())
    seq = 0
    waits = 0
    for _ in range(ROUNDS):
        # The batch hears the customers in the opposite order to the check-ins' lock order.
        batch = []
        for cid in reversed(ids):
            seq += 1
            batch.append(_detection(tokens[cid], seq, clock))
        batch_done = threading.Event()

        def work(
            i: int, batch: list[Incoming] = batch, done: threading.Event = batch_done
        ) -> object:
            """Thread 0 writes the batch; the others check one customer in each."""
            if i == 0:
                try:
                    return writer.write(batch)
                finally:
                    done.set()
            # The batch reaches ids[0] last: its check-in holds that lock until the
            # batch has evaluated everyone else and queues behind it.
            return _check_in(engine, clock, ids[i - 1], hold=done if i == 1 else None)

        results = run_threads(CHECKING_IN + 1, work)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, errors
        assert results[0].stored == CUSTOMERS  # type: ignore[union-attr]
        waits += bool(results[1])
        clock.advance(timedelta(days=1))
    if engine.dialect.name == "postgresql":
        assert waits, "the batch never queued behind a check-in: the race was not exercised"
    with Session(engine) as session:
        outcomes = Counter(
            session.exec(
                select(CampaignGrant.outcome).where(CampaignGrant.campaign_id == zone)
            ).all()
        )
        per_day = session.exec(
            select(CampaignGrant.customer_id, CampaignGrant.store_day, func.count())
            .where(CampaignGrant.outcome == "granted")
            .group_by(CampaignGrant.customer_id, CampaignGrant.store_day)
        ).all()
        paid = sum(points.balance(session, cid) for cid in ids)
        assert all(points.balance(session, c) == points.ledger_sum(session, c) for c in ids)
    # Every customer qualified once or twice a day (the batch's zone entry is the same
    # source event as the check-in's when the check-in's visit was already open); the
    # daily cap lets one grant a day through and the budget stops at its total exactly.
    decided = outcomes["granted"] + outcomes["capped"]
    assert CUSTOMERS * ROUNDS <= decided <= 2 * CUSTOMERS * ROUNDS
    assert all(n == 1 for _, _, n in per_day), per_day
    assert outcomes["granted"] == BUDGET_GRANTS * ROUNDS
    assert paid == BUDGET_GRANTS * ROUNDS * POINTS
    assert campaign_row(engine, zone).budget_remaining == 0
