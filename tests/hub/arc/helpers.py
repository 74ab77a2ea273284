"""Helpers for ARC tests: customers, running timers, reading the outbox."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.customers import Customer, OutboxMessage
from hub.models.journeys import JourneyInstance, OutboxDelivery
from hub.services import journeys, timers
from tests.hub.factories import CRYPTO

_numbers = itertools.count(1)


def make_customer(engine: Engine, clock: ManualClock, *, consent: bool = True,
                  phone: str | None = None, **fields: Any) -> tuple[str, str]:
    """A customer with marketing consent on every channel (unless ``consent=False``)."""
    phone = phone or f"+86138{next(_numbers):08d}"
    cid = f"cus_t{next(_numbers)}"
    with Session(engine) as s:
        s.add(Customer(
            id=cid, phone_hash=CRYPTO.keyed_hash("phone", phone), phone_enc=CRYPTO.encrypt(phone),
            created_at=clock.now(), consent_marketing_sms=consent,
            consent_marketing_push=consent, consent_marketing_call=consent, **fields,
        ))
        s.commit()
    return cid, phone


def publish(engine: Engine, clock: ManualClock, spec: dict[str, Any]) -> int:
    """Publish a definition; return its id."""
    with Session(engine) as s:
        row = journeys.publish(s, spec, clock.now())
        s.commit()
        return int(row.id or 0)


def enrol(engine: Engine, clock: ManualClock, journey: str, customer_id: str,
          **kwargs: Any) -> str:
    """Enrol and commit; return the instance id."""
    with Session(engine) as s:
        inst = journeys.enrol(s, journey, customer_id, clock.now(), **kwargs)
        s.commit()
        return inst.id


def instance(engine: Engine, iid: str) -> JourneyInstance:
    """A fresh copy of an instance."""
    with Session(engine) as s:
        inst = s.get(JourneyInstance, iid)
        assert inst is not None
        s.expunge(inst)
        return inst


def messages(engine: Engine, customer_id: str | None = None) -> list[tuple[str, str, str]]:
    """(dedupe key, channel, delivery status) of queued/sent messages, oldest first."""
    with Session(engine) as s:
        query = (select(OutboxMessage.dedupe_key, OutboxMessage.channel, OutboxDelivery.status)
                 .join(OutboxDelivery, OutboxDelivery.outbox_id == OutboxMessage.id)
                 .order_by(OutboxMessage.id))
        if customer_id is not None:
            query = query.where(OutboxMessage.customer_id == customer_id)
        return [tuple(r) for r in s.execute(query).all()]  # type: ignore[misc]


def steps_sent(engine: Engine, customer_id: str) -> list[str]:
    """The journey step ids whose messages were queued for the customer, in order."""
    return [key.rsplit(":", 1)[1] for key, _, _ in messages(engine, customer_id)
            if key.startswith("journey:")]


def run_until(engine: Engine, clock: ManualClock, when: datetime,
              step: timedelta = timedelta(hours=6)) -> None:
    """Move the clock to ``when`` in ``step``s, running due timers at each stop."""
    while clock.now() < when:
        clock.set(min(when, clock.now() + step))
        timers.run_due(engine, clock)
