"""Kiosk tables (queue tickets, visit ratings) and the kiosk API's request/response models."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.models.coupons import CouponPublic
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
    # Set when staff call the ticket to the counter; a called ticket no longer waits.
    called_at: datetime | None = Field(None, sa_type=UtcDateTime)


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
    # The last number staff called to the counter today (None before the first call).
    now_serving: int | None = None


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


class TicketCalled(SQLModel):
    """The ticket staff called to the counter (none when nobody waits) and who still waits."""

    id: str | None
    number: int | None
    customer_id: str | None
    waiting: int


class RatingReportRow(SQLModel):
    """One store's ratings on one local day; a small group shows its count only."""

    store_id: str
    day: str
    ratings: int
    suppressed: bool
    mean_stars: float | None
    # Stars "1".."5" -> how many; withheld when the group is too small to show.
    distribution: dict[str, int] | None


class KioskCustomerRef(SQLModel):
    """The customer standing at the kiosk (signed in by phone session or token presence)."""

    customer_id: str = Field(max_length=40)


class KioskTrialStart(KioskCustomerRef):
    """A free trial the customer starts at the kiosk."""

    service_id: str = Field(max_length=64)
    # What the customer says their phone has (e.g. ["4g", "volte"]); the hub checks the fit.
    handset: list[str] = Field(default_factory=list, max_length=16)
    # The customer ticked "text me the service manual and reminders" on the kiosk.
    consent_sms: bool = False


class ServiceStanding(SQLModel):
    """Where the customer stands with one catalogue service."""

    service_id: str
    state: str  # available | trial | trial_ended | subscribed
    trial_id: str | None = None
    ends_at: datetime | None = None


class PickupRequest(KioskCustomerRef):
    """An online order's code (the channel's order number) typed at the kiosk."""

    order_code: str = Field(min_length=1, max_length=128)


class PickupPublic(SQLModel):
    """The order found for pickup and where it now stands."""

    order_id: str
    order_code: str
    product: str
    status: str
    already_checked_in: bool


class KioskWallet(SQLModel):
    """Points balance and coupons of the customer at the kiosk."""

    customer_id: str
    points: int
    coupons: list[CouponPublic]
