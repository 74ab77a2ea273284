"""Journey tables: versioned definitions, instances, staff tasks, outbox delivery state, DNC."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict
from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.models.types import UtcDateTime


class InstanceState(StrEnum):
    """Where a journey instance is in its life."""

    ACTIVE = "active"
    COMPLETED = "completed"  # reached an ``end`` step
    EXITED = "exited"  # left early on an exit event, a restart, or the maximum length


class TaskState(StrEnum):
    """A staff task's life."""

    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class DeliveryStatus(StrEnum):
    """Dispatch state of one outbox message."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"  # the sender kept failing; needs a person
    CANCELLED = "cancelled"  # its journey ended before it went out
    SUPPRESSED = "suppressed"  # no consent, or do-not-contact, at send time


class JourneyDefinition(SQLModel, table=True):
    """One version of a journey; instances keep the version they started with."""

    __tablename__ = "journey_definition"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_journey_name_version"),)
    id: int | None = Field(None, primary_key=True)
    name: str = Field(max_length=64, index=True)
    version: int
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_type=UtcDateTime)


class JourneyInstance(SQLModel, table=True):
    """A customer's trip through one definition version."""

    __tablename__ = "journey_instance"
    __table_args__ = (
        # Set only while active: the unique constraint keeps a customer out of the same
        # journey twice at once on both backends (NULLs never collide).
        UniqueConstraint("active_key", name="uq_journey_instance_active"),
        Index("ix_journey_instance_customer", "customer_id", "journey"),
    )
    id: str = Field(primary_key=True, max_length=40)
    definition_id: int = Field(foreign_key="journey_definition.id", index=True)
    journey: str = Field(max_length=64)
    customer_id: str = Field(foreign_key="customer.id", ondelete="CASCADE")
    store_id: str | None = Field(None, foreign_key="store.id", max_length=64)
    state: str = Field(InstanceState.ACTIVE.value, max_length=12)
    active_key: str | None = Field(None, max_length=120)
    current_step: str | None = Field(None, max_length=64)
    # "wait" (a timer is due), "event" (waiting for an event), "quiet" (a send held
    # back by quiet hours), or None while the step has not been reached.
    waiting: str | None = Field(None, max_length=8)
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    history: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    started_at: datetime = Field(sa_type=UtcDateTime)
    deadline_at: datetime = Field(sa_type=UtcDateTime)
    ended_at: datetime | None = Field(None, sa_type=UtcDateTime)
    exit_reason: str | None = Field(None, max_length=64)


class StaffTask(SQLModel, table=True):
    """Work a journey hands to people (an outbound call with a due time, a follow-up)."""

    __tablename__ = "staff_task"
    __table_args__ = (UniqueConstraint("instance_id", "step_id", name="uq_staff_task_step"),)
    id: int | None = Field(None, primary_key=True)
    instance_id: str = Field(foreign_key="journey_instance.id", ondelete="CASCADE")
    step_id: str = Field(max_length=64)
    customer_id: str = Field(foreign_key="customer.id", index=True, ondelete="CASCADE")
    store_id: str | None = Field(None, foreign_key="store.id", index=True, max_length=64)
    kind: str = Field(max_length=24)
    title: str = Field(max_length=200)
    due_at: datetime = Field(sa_type=UtcDateTime)
    state: str = Field(TaskState.OPEN.value, max_length=12)
    created_at: datetime = Field(sa_type=UtcDateTime)
    closed_at: datetime | None = Field(None, sa_type=UtcDateTime)
    outcome: str | None = Field(None, max_length=200)


class StaffTaskPublic(SQLModel):
    id: int
    instance_id: str
    customer_id: str
    store_id: str | None
    kind: str
    title: str
    due_at: datetime
    state: str


class OutboxDelivery(SQLModel, table=True):
    """Dispatch state of one ``outbox`` row (the core table stays as it is)."""

    __tablename__ = "outbox_delivery"
    __table_args__ = (
        Index("ix_outbox_delivery_due", "status", "next_attempt_at"),
        Index("ix_outbox_delivery_source", "source_kind", "source_id"),
    )
    id: int | None = Field(None, primary_key=True)
    outbox_id: int = Field(foreign_key="outbox.id", unique=True, ondelete="CASCADE")
    status: str = Field(DeliveryStatus.QUEUED.value, max_length=12)
    # marketing: needs the channel's consent; service: only do-not-contact applies;
    # transactional (sign-in codes): always sent.
    purpose: str = Field(max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UtcDateTime)
    last_error: str | None = Field(None, max_length=300)
    source_kind: str | None = Field(None, max_length=24)
    source_id: str | None = Field(None, max_length=64)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class DoNotContact(SQLModel, table=True):
    """A customer asked not to be contacted on ``channel`` (a STOP reply, an agent's note)."""

    __tablename__ = "do_not_contact"
    __table_args__ = (UniqueConstraint("customer_id", "channel", name="uq_dnc_customer_channel"),)
    id: int | None = Field(None, primary_key=True)
    customer_id: str = Field(foreign_key="customer.id", ondelete="CASCADE")
    channel: str = Field(max_length=16)
    source: str = Field(max_length=24)
    created_at: datetime = Field(sa_type=UtcDateTime)


class DefinitionPublic(SQLModel):
    id: int
    name: str
    version: int
    spec: dict[str, Any]
    created_at: datetime


class InstancePublic(SQLModel):
    id: str
    definition_id: int
    journey: str
    customer_id: str
    store_id: str | None
    state: str
    current_step: str | None
    waiting: str | None
    history: list[Any]
    started_at: datetime
    deadline_at: datetime
    ended_at: datetime | None
    exit_reason: str | None


class EnrolRequest(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={"examples": [{"customer_id": "cus_0192...", "store_id": "fz-gulou"}]}
    )
    customer_id: str = Field(max_length=40)
    store_id: str | None = Field(None, max_length=64)
    context: dict[str, Any] = Field(default_factory=dict)


class EventRequest(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={"examples": [{"event": "trial.rated", "payload": {"rating": 5}}]}
    )
    event: str = Field(min_length=1, max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict)
    journey: str | None = Field(None, max_length=64)


class TaskDone(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={"examples": [{"outcome": "reached; will think about it"}]}
    )
    outcome: str = Field("done", max_length=200)


class ReplyIn(SQLModel):
    """An inbound reply as the SMS gateway reports it."""

    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={"examples": [{"channel": "sms", "phone": "+8613800138000",
                                         "text": "STOP"}]}
    )
    channel: str = Field("sms", schema_extra={"pattern": r"^(sms|mms|push|call)$"})
    phone: str = Field(min_length=7, max_length=24)
    text: str = Field(max_length=500)
