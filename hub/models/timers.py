"""Durable timers: time-driven work (expiries, SLA deadlines, journey steps) in the database."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.models.types import UtcDateTime


class TimerState(StrEnum):
    """Where a timer is in its life."""

    PENDING = "pending"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"  # its handler kept failing; needs a person


class Timer(SQLModel, table=True):
    """One piece of work due at ``due_at``; ``(kind, key)`` makes scheduling idempotent."""

    __tablename__ = "timer"
    __table_args__ = (
        UniqueConstraint("kind", "key", name="uq_timer_kind_key"),
        Index("ix_timer_state_due", "state", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)
    key: str = Field(max_length=200)
    due_at: datetime = Field(sa_type=UtcDateTime)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: str = Field(default=TimerState.PENDING.value, max_length=12)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
