"""Fraud rules: the one-statement counters (each window and filter), and the pure rules."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.checkins import CheckinAttempt
from hub.models.customers import Customer
from hub.models.registry import Store
from hub.services import fraud
from hub.services.errors import RateLimited
from tests.hub.factories import seed

CODE = "0123456789ab"


def _attempt(
    session: Session,
    clock: ManualClock,
    ago: timedelta,
    outcome: str,
    customer: str | None = "cus_a",
    device: str | None = "dev-a",
    code: str = CODE,
    store: str | None = "fz-gulou",
) -> None:
    session.add(
        CheckinAttempt(
            customer_id=customer,
            device_id=device,
            code=code,
            store_id=store,
            at=clock.now() - ago,
            outcome=outcome,
        )
    )


def test_counts_respect_each_window_and_filter(engine: Engine, clock: ManualClock) -> None:
    """Attempts per customer/device (1 min), failures (10 min), code uses (3 min), last stay."""
    seed(engine, clock)
    with Session(engine) as session:
        for cid in ("cus_a", "cus_b"):
            session.add(Customer(id=cid, phone_hash=cid, phone_enc="-", created_at=clock.now()))
        session.flush()
        sec, minute = timedelta(seconds=1), timedelta(minutes=1)
        _attempt(session, clock, 10 * sec, "accepted", store="fz-taijiang")
        _attempt(session, clock, 20 * sec, "bad_code")
        _attempt(session, clock, 5 * minute, "same_visit", store="fz-gulou")
        _attempt(session, clock, 9 * minute, "store_closed")
        _attempt(session, clock, 11 * minute, "bad_code")  # outside every window
        _attempt(session, clock, 30 * sec, "accepted", customer="cus_b", device="dev-a")
        _attempt(session, clock, 2 * minute, "accepted", customer="cus_b", device="dev-b")
        _attempt(session, clock, 4 * minute, "accepted", customer="cus_b", code="ffffffffffff")
        session.commit()
        counts = fraud.read_counts(session.connection(), clock.now(), "cus_a", "dev-a", CODE)
        no_device = fraud.read_counts(session.connection(), clock.now(), "cus_a", None, CODE)
    assert (counts.by_customer, counts.by_device, counts.failures) == (2, 3, 2)
    # Accepted uses of the code in 3 minutes, by anyone: cus_a 10 s ago, cus_b 30 s and 2 min.
    assert counts.code_uses == 3
    assert counts.last_store_id == "fz-taijiang"
    assert counts.last_at == clock.now() - timedelta(seconds=10)
    assert no_device.by_device == 0 and no_device.by_customer == 2


def test_counts_of_a_customer_with_no_history(engine: Engine, clock: ManualClock) -> None:
    """Zeros and no last check-in."""
    with Session(engine) as session:
        counts = fraud.read_counts(session.connection(), clock.now(), "cus_none", "d", CODE)
    assert counts == fraud.AttemptCounts(0, 0, 0, 0, None, None)


def test_rate_limit_rules_in_order() -> None:
    """Customer rate first, then device, then failures; the code-use cap uses capacity."""
    limit = fraud.MAX_ATTEMPTS_PER_CUSTOMER
    cases = [
        (fraud.AttemptCounts(limit, 99, 99, 0, None, None), "dev", "customer_rate"),
        (fraud.AttemptCounts(0, limit, 99, 0, None, None), "dev", "device_rate"),
        (fraud.AttemptCounts(0, limit, 0, 0, None, None), None, None),
        (
            fraud.AttemptCounts(0, 0, fraud.MAX_FAILURES_PER_CUSTOMER, 0, None, None),
            None,
            "failure_rate",
        ),
    ]
    for counts, device, code in cases:
        if code is None:
            fraud.check_rate_limits(counts, device)
            continue
        with pytest.raises(RateLimited) as info:
            fraud.check_rate_limits(counts, device)
        assert info.value.code == code and info.value.retry_after_s > 0
    fraud.check_code_use(fraud.AttemptCounts(0, 0, 0, 59, None, None), capacity=60)
    with pytest.raises(RateLimited) as used:
        fraud.check_code_use(fraud.AttemptCounts(0, 0, 0, 60, None, None), capacity=60)
    assert used.value.code == "code_rate"


def test_opening_spans_in_the_store_time_zone(clock: ManualClock) -> None:
    """Spans per weekday in local time; no hours at all means always open."""
    shanghai = ZoneInfo("Asia/Shanghai")
    spans = fraud.opening_spans({"mon": [["09:00", "12:00"], ["13:30", "21:00"]]})
    monday_11_local = clock.now()  # 03:00 UTC on Monday is 11:00 in Shanghai
    assert fraud.is_open_at(spans, shanghai, monday_11_local)
    assert not fraud.is_open_at(spans, shanghai, monday_11_local + timedelta(hours=1, minutes=30))
    assert not fraud.is_open_at(spans, shanghai, monday_11_local + timedelta(days=1))
    assert fraud.opening_spans({}) is None and fraud.is_open_at(None, shanghai, clock.now())
    store = Store(
        id="s",
        region_id="r",
        name="s",
        latitude=0,
        longitude=0,
        timezone="Asia/Shanghai",
        opening_hours={"mon": [["09:00", "12:00"]]},
    )
    assert fraud.is_open(store, monday_11_local)
