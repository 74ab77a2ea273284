"""Entry points the rest of the hub calls: check-ins, MQTT presence, kiosk sign-ins."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from hub.models.checkins import Visit
from hub.services.campaigns import evaluation
from hub.services.campaigns.rules import TriggerEvent
from storewave.wire import Grant


def on_checkin(
    session: Session,
    now: datetime,
    customer_id: str,
    store_id: str,
    zone_id: str | None,
    visit: Visit,
    new_visit: bool,
) -> list[Grant]:
    """Grants for an accepted check-in, in the check-in's own transaction."""
    event = TriggerEvent(
        channel="checkin",
        event_id=visit.id,
        customer_id=customer_id,
        store_id=store_id,
        at=now,
        zone_id=zone_id,
        visit_id=visit.id,
        new_visit=new_visit,
        visit_started_at=visit.started_at,
    )
    return evaluation.to_wire(session, evaluation.evaluate(session, event))


def on_presence(
    session: Session,
    now: datetime,
    customer_id: str,
    store_id: str,
    zone_id: str | None,
    event_id: str,
) -> list[Grant]:
    """Grants for a node hearing the customer's phone token (zone entry, dwell): to the inbox.

    The decisions are stored as grants, which is what the inbox API reads.
    """
    # Imported here: the check-in service imports this module (no import cycle at load).
    # A visit the check-in service would still extend is the visit this presence is part of.
    from hub.services.checkins import VISIT_IDLE

    visit = session.exec(
        select(Visit)
        .where(
            Visit.customer_id == customer_id,
            Visit.store_id == store_id,
            Visit.last_seen_at > now - VISIT_IDLE,
        )
        .order_by(col(Visit.started_at).desc())
    ).first()
    event = TriggerEvent(
        channel="mqtt",
        event_id=event_id,
        customer_id=customer_id,
        store_id=store_id,
        at=now,
        zone_id=zone_id,
        visit_id=visit.id if visit else None,
        visit_started_at=visit.started_at if visit else None,
    )
    return evaluation.to_wire(session, evaluation.evaluate(session, event))


def on_kiosk_signin(
    session: Session, now: datetime, customer_id: str, store_id: str, request_id: str
) -> list[Grant]:
    """Grants for a customer identifying themselves at a store's kiosk."""
    event = TriggerEvent(
        channel="kiosk", event_id=request_id, customer_id=customer_id, store_id=store_id, at=now
    )
    return evaluation.to_wire(session, evaluation.evaluate(session, event))
