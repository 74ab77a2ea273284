"""Customers, their tags, phone sign-in (one-time codes, sessions) and the message outbox."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.models.types import UtcDateTime

# A loose E.164 check after removing spaces and dashes; the carrier validates the rest.
PHONE_PATTERN = r"^\+?[1-9][0-9]{6,14}$"


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"


class AgeBand(StrEnum):
    UNDER_18 = "<18"
    A18_24 = "18-24"
    A25_34 = "25-34"
    A35_44 = "35-44"
    A45_54 = "45-54"
    A55_64 = "55-64"
    A65_PLUS = "65+"


class TagKind(StrEnum):
    """Customer tag kinds of the touchpoint module (SEEDS.md 3)."""

    BASIC = "basic"
    APPLICATION = "application"
    PROFILE = "profile"


class ConsentFields(SQLModel):
    consent_marketing_sms: bool = False
    consent_marketing_push: bool = False
    consent_marketing_call: bool = False
    consent_analytics: bool = False


class Customer(ConsentFields, table=True):
    id: str = Field(primary_key=True, max_length=40)
    phone_hash: str = Field(unique=True, max_length=128)
    phone_enc: str = Field(max_length=512)
    gender: str | None = Field(None, max_length=16)
    age_band: str | None = Field(None, max_length=8)
    postal_code: str | None = Field(None, max_length=12)
    microphone_disclosure_version: str | None = Field(None, max_length=16)
    microphone_accepted_at: datetime | None = Field(None, sa_type=UtcDateTime)
    created_at: datetime = Field(sa_type=UtcDateTime)
    last_checkin_at: datetime | None = Field(None, sa_type=UtcDateTime)


class CustomerUpdate(SQLModel):
    """What the customer (or an admin) may change; unset fields stay as they are."""

    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [
                {
                    "gender": "female",
                    "age_band": "25-34",
                    "postal_code": "350001",
                    "consent_marketing_sms": True,
                    "microphone_disclosure_version": "2026-01",
                    "microphone_accepted": True,
                }
            ]
        }
    )
    gender: Gender | None = None
    age_band: AgeBand | None = None
    postal_code: str | None = Field(None, schema_extra={"pattern": r"^[0-9A-Za-z -]{3,12}$"})
    consent_marketing_sms: bool | None = None
    consent_marketing_push: bool | None = None
    consent_marketing_call: bool | None = None
    consent_analytics: bool | None = None
    microphone_disclosure_version: str | None = Field(None, max_length=16)
    microphone_accepted: bool | None = None


class CustomerPublic(ConsentFields):
    """A customer as the API shows them: never the phone number or its hash."""

    id: str
    gender: str | None
    age_band: str | None
    postal_code: str | None
    microphone_disclosure_version: str | None
    microphone_accepted_at: datetime | None
    created_at: datetime
    tags: list[TagPublic] = []


class CustomerTag(SQLModel, table=True):
    __tablename__ = "customer_tag"
    __table_args__ = (UniqueConstraint("customer_id", "kind", "name"),)
    id: int | None = Field(None, primary_key=True)
    customer_id: str = Field(foreign_key="customer.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=16)
    name: str = Field(max_length=64)
    value: str = Field("", max_length=200)
    created_at: datetime = Field(sa_type=UtcDateTime)


class TagCreate(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [{"kind": "application", "name": "video_app", "value": "heavy"}]
        }
    )
    kind: TagKind
    name: str = Field(min_length=1, max_length=64, schema_extra={"pattern": r"^[a-z0-9_.-]+$"})
    value: str = Field("", max_length=200)


class TagPublic(SQLModel):
    kind: str
    name: str
    value: str


class OtpChallenge(SQLModel, table=True):
    """A one-time sign-in code sent by SMS; only its keyed hash is kept."""

    __tablename__ = "otp_challenge"
    id: int | None = Field(None, primary_key=True)
    phone_hash: str = Field(index=True, max_length=128)
    code_hash: str = Field(max_length=128)
    created_at: datetime = Field(sa_type=UtcDateTime)
    expires_at: datetime = Field(sa_type=UtcDateTime)
    attempts: int = 0
    used_at: datetime | None = Field(None, sa_type=UtcDateTime)


class CustomerSession(SQLModel, table=True):
    """A phone app's session; the token itself is never stored."""

    __tablename__ = "customer_session"
    token_hash: str = Field(primary_key=True, max_length=128)
    customer_id: str = Field(foreign_key="customer.id", index=True, ondelete="CASCADE")
    device_id: str | None = Field(None, max_length=64)
    created_at: datetime = Field(sa_type=UtcDateTime)
    expires_at: datetime = Field(sa_type=UtcDateTime)
    revoked_at: datetime | None = Field(None, sa_type=UtcDateTime)


class OutboxMessage(SQLModel, table=True):
    """A message to a customer or staff member; senders mark ``sent_at`` (never sent twice)."""

    __tablename__ = "outbox"
    id: int | None = Field(None, primary_key=True)
    channel: str = Field(max_length=16)  # sms | mms | push | call
    recipient_enc: str = Field(max_length=512)
    customer_id: str | None = Field(None, foreign_key="customer.id", index=True, ondelete="CASCADE")
    body: str = Field(max_length=2000)
    dedupe_key: str = Field(unique=True, max_length=128)
    created_at: datetime = Field(sa_type=UtcDateTime)
    sent_at: datetime | None = Field(None, sa_type=UtcDateTime)


class OtpRequest(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={"examples": [{"phone": "+8613800138000"}]}
    )
    phone: str = Field(min_length=7, max_length=24)


class SessionRequest(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [{"phone": "+8613800138000", "code": "123456", "device_id": "a1b2c3"}]
        }
    )
    phone: str = Field(min_length=7, max_length=24)
    code: str = Field(schema_extra={"pattern": r"^[0-9]{6}$"})
    device_id: str | None = Field(None, max_length=64)


class SessionIssued(SQLModel):
    token: str
    customer_id: str
    expires_at: datetime
    new_customer: bool
