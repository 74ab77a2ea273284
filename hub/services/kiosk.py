"""Kiosk rules: queue tickets with an estimated wait, and visit ratings."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from hub.models.kiosk import QueueTicket, RatingCreate, TicketIssued, VisitRating
from hub.models.registry import Store
from hub.models.types import new_id
from hub.services.customers import get_customer

# A counter serves a customer in about this long (store managers' estimate); the wait
# shown is this times the tickets ahead.
MINUTES_PER_CUSTOMER: Final = 4
# There is no "served" signal yet: a ticket older than this is assumed served, so the
# queue length is the tickets issued in this window before the new one.
QUEUE_WINDOW: Final = timedelta(minutes=45)


def take_ticket(session: Session, store: Store, customer_id: str | None,
                now: datetime) -> TicketIssued:
    """The next number of the store's day, with how many are ahead and the wait."""
    if customer_id is not None:
        customer_id = get_customer(session, customer_id).id
    day = now.astimezone(ZoneInfo(store.timezone)).date().isoformat()
    last = session.exec(
        select(func.max(QueueTicket.number)).where(
            QueueTicket.store_id == store.id, QueueTicket.day == day
        )
    ).one()
    ahead = session.exec(
        select(func.count()).select_from(QueueTicket).where(
            QueueTicket.store_id == store.id,
            col(QueueTicket.issued_at) > now - QUEUE_WINDOW,
        )
    ).one()
    ticket = QueueTicket(
        id=new_id("qtk"), store_id=store.id, day=day, number=int(last or 0) + 1,
        customer_id=customer_id, issued_at=now,
    )
    session.add(ticket)
    session.flush()
    return TicketIssued(
        id=ticket.id, number=ticket.number, ahead=int(ahead),
        estimated_wait_min=int(ahead) * MINUTES_PER_CUSTOMER, issued_at=now,
    )


def rate_visit(session: Session, store: Store, body: RatingCreate, now: datetime) -> VisitRating:
    """Record a 1-5 rating (and comment) of today's visit to ``store``."""
    customer_id = get_customer(session, body.customer_id).id if body.customer_id else None
    rating = VisitRating(
        id=new_id("rat"), store_id=store.id, customer_id=customer_id, stars=body.stars,
        comment=body.comment.strip(), at=now,
    )
    session.add(rating)
    session.flush()
    return rating
