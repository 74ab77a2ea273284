"""Kiosk tables: queue tickets for the counter and visit ratings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.models.types import UtcDateTime

# Issue 10: a visit is rated 1-5 with an optional comment.
MIN_STARS, MAX_STARS = 1, 5
# A comment is a sentence or two; longer text belongs in a complaint channel.
MAX_COMMENT = 500


class QueueTicket(SQLModel, table=True):
    """A numbered ticket for the store's counter, numbered from 1 each local day."""

    __tablename__ = "kiosk_queue_ticket"
    __table_args__ = (UniqueConstraint("store_id", "day", "number", name="uq_queue_number"),)
    id: str = Field(primary_key=True, max_length=40)
    store_id: str = Field(foreign_key="store.id", index=True, max_length=64)
    day: str = Field(max_length=10)  # the store's local date, ISO
    number: int
    customer_id: str | None = Field(
        None, foreign_key="customer.id", ondelete="SET NULL", max_length=40
    )
    issued_at: datetime = Field(sa_type=UtcDateTime)


class VisitRating(SQLModel, table=True):
    """A customer's 1-5 rating of today's visit, with an optional comment."""

    __tablename__ = "kiosk_visit_rating"
    id: str = Field(primary_key=True, max_length=40)
    store_id: str = Field(foreign_key="store.id", index=True, max_length=64)
    customer_id: str | None = Field(
        None, foreign_key="customer.id", ondelete="SET NULL", max_length=40
    )
    stars: int
    comment: str = Field("", max_length=MAX_COMMENT)
    at: datetime = Field(sa_type=UtcDateTime)


class TicketRequest(SQLModel):
    """Ask for a ticket, for a known customer or anonymously."""

    customer_id: str | None = Field(None, max_length=40)


class TicketIssued(SQLModel):
    """The ticket: its number, tickets ahead, the estimated wait."""

    id: str
    number: int
    ahead: int
    estimated_wait_min: int
    issued_at: datetime


class RatingCreate(SQLModel):
    """A 1-5 rating with an optional comment."""

    customer_id: str | None = Field(None, max_length=40)
    stars: int = Field(ge=MIN_STARS, le=MAX_STARS)
    comment: str = Field("", max_length=MAX_COMMENT)


class RatingPublic(SQLModel):
    """A stored rating."""

    id: str
    store_id: str
    stars: int
    comment: str
    at: datetime
