"""Outbox endpoints: inbound replies (STOP, Y, ratings, reasons) and delivery counts."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select

from hub.api.deps import AdminOnly, ContextDep, SessionDep
from hub.models.customers import Customer
from hub.models.journeys import OutboxDelivery, ReplyIn
from hub.services import arc, outbox, phone_auth

router = APIRouter(prefix="/v1/outbox", tags=["outbox"])


@router.post("/replies")
def inbound_reply(ctx: ContextDep, session: SessionDep, _: AdminOnly,
                  body: ReplyIn) -> dict[str, object]:
    """A customer's reply from the gateway: STOP sets do-not-contact; others go to ARC."""
    phone = phone_auth.normalize_phone(body.phone)
    digest = phone_auth.phone_hash(ctx.crypto, phone)
    customer = session.execute(
        select(Customer).where(Customer.phone_hash == digest)).scalar_one_or_none()
    if customer is None:
        return {"action": "unknown_sender"}
    now = ctx.clock.now()
    if outbox.is_stop(body.text):
        channels = outbox.set_do_not_contact(session, customer.id, body.channel, "stop_reply", now)
        return {"action": "do_not_contact", "channels": channels}
    return {"action": arc.handle_reply(session, customer, body.text, now)}


@router.get("/stats")
def delivery_stats(session: SessionDep, _: AdminOnly) -> dict[str, int]:
    """How many messages are in each delivery state."""
    rows = session.execute(
        select(OutboxDelivery.status, func.count()).group_by(OutboxDelivery.status)).all()
    return {status: int(n) for status, n in rows}
