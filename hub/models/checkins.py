"""Check-ins: visits, the zone path, attempts (for fraud rules), phone tokens, presence."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from hub.models.types import UtcDateTime


class Visit(SQLModel, table=True):
    """One customer's stay in one store; kept (with the customer detached) after erasure."""

    id: str = Field(primary_key=True, max_length=40)
    customer_id: str | None = Field(
        None, foreign_key="customer.id", index=True, ondelete="SET NULL"
    )
    store_id: str = Field(foreign_key="store.id", index=True, max_length=64)
    started_at: datetime = Field(sa_type=UtcDateTime, index=True)
    last_seen_at: datetime = Field(sa_type=UtcDateTime)
    checkins: int = 1


class VisitZone(SQLModel, table=True):
    """One step of a visit's path through the store's zones."""

    __tablename__ = "visit_zone"
    id: int | None = Field(None, primary_key=True)
    visit_id: str = Field(foreign_key="visit.id", index=True, ondelete="CASCADE")
    zone_id: str | None = Field(None, max_length=64)
    entered_at: datetime = Field(sa_type=UtcDateTime)


class CheckinAttempt(SQLModel, table=True):
    """Every check-in attempt and its outcome: the input of the rate limits."""

    __tablename__ = "checkin_attempt"
    id: int | None = Field(None, primary_key=True)
    customer_id: str | None = Field(None, foreign_key="customer.id", index=True, ondelete="CASCADE")
    device_id: str | None = Field(None, max_length=64, index=True)
    code: str = Field(max_length=12, index=True)
    short_id: int | None = Field(None, index=True)
    store_id: str | None = Field(None, max_length=64)
    at: datetime = Field(sa_type=UtcDateTime, index=True)
    outcome: str = Field(max_length=24)


class PhoneToken(SQLModel, table=True):
    """A short-lived 48-bit token a phone plays so the store's node can identify it."""

    __tablename__ = "phone_token"
    token: str = Field(primary_key=True, max_length=12)
    customer_id: str = Field(foreign_key="customer.id", index=True, ondelete="CASCADE")
    issued_at: datetime = Field(sa_type=UtcDateTime)
    expires_at: datetime = Field(sa_type=UtcDateTime)


class Presence(SQLModel, table=True):
    """Where a customer was last identified by a node hearing their phone token."""

    customer_id: str = Field(primary_key=True, foreign_key="customer.id", ondelete="CASCADE")
    store_id: str = Field(foreign_key="store.id", index=True, max_length=64)
    zone_id: str | None = Field(None, max_length=64)
    node_id: str = Field(max_length=64)
    seen_at: datetime = Field(sa_type=UtcDateTime)


class VisitPublic(SQLModel):
    id: str
    customer_id: str | None
    store_id: str
    started_at: datetime
    last_seen_at: datetime
    checkins: int
    zone_path: list[str | None] = []


class PresencePublic(SQLModel):
    customer_id: str
    store_id: str
    zone_id: str | None
    seen_at: datetime
