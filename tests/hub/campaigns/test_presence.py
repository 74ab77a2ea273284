"""MQTT-reported presence (a node hears a phone token) grants zone campaigns into the inbox."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from edge.modem.codes import new_phone_token, to_hex
from hub.clock import ManualClock
from hub.models.checkins import PhoneToken
from hub.services.campaigns import inbox
from hub.services.node_events import apply_node_event
from storewave.wire import CodeKind, DetectionBody, DetectionEvent
from tests.hub.campaigns.helpers import customer, live_campaign
from tests.hub.factories import seed


def _heard(node: str, token: str, clock: ManualClock, seq: int) -> DetectionEvent:
    """A detection of ``token`` by ``node`` now."""
    body = DetectionBody(
        code=token, kind=CodeKind.TOKEN, snr_db=12.0, confidence=0.9, first_heard=clock.now()
    )
    return DetectionEvent(node=node, boot=1, seq=seq, ts=clock.now(), body=body)


def test_zone_presence_grants_once_into_the_inbox(engine: Engine, clock: ManualClock) -> None:
    """Heard in the phones zone: one grant in the inbox, even when the event is re-applied."""
    seed(engine, clock)
    customer(engine, clock, "c1")
    cid = live_campaign(
        engine,
        clock,
        trigger="zone_entry",
        where={"zones": ["fz-gulou-phones"]},
        reward={"kind": "points", "points": 7, "title": "Phones corner"},
    )
    token = to_hex(new_phone_token())
    with Session(engine) as session:
        session.add(
            PhoneToken(
                token=token,
                customer_id="c1",
                issued_at=clock.now(),
                expires_at=clock.now() + timedelta(minutes=2),
            )
        )
        session.commit()
    door, phones = _heard("fz-gulou-n1", token, clock, 1), _heard("fz-gulou-n2", token, clock, 2)
    for event in (door, phones, phones):  # the last one: MQTT redelivery of the same event
        with Session(engine) as session:
            apply_node_event(session, event, clock.now())
            session.commit()
    with Session(engine) as session:
        items = inbox.inbox(session, "c1")
    assert [(i.campaign_id, i.points, i.title) for i in items] == [(cid, 7, "Phones corner")]
