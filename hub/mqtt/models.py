"""Ingest tables: stored node events, dead letters, per-boot ack cursors and seq gaps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

# Longest topic kept in a dead letter: real node topics are < 100 characters; a hostile
# client could send a 64 KiB topic, which is cut so a dead letter stays small.
MAX_DEAD_TOPIC_CHARS = 300
# Payload bytes kept (hex-free, decoded with replacement) for an operator to look at.
MAX_DEAD_PAYLOAD_CHARS = 4096
MAX_REASON_CHARS = 500
# Events outgrow 2**31 rows at fleet scale; SQLite only auto-increments INTEGER keys.
_EVENT_ID_TYPE = BigInteger().with_variant(Integer, "sqlite")


class MqttEvent(SQLModel, table=True):
    """One accepted node message, stored once per ``(node, boot, seq)``."""

    __tablename__ = "mqtt_event"
    __table_args__ = (UniqueConstraint("node", "boot", "seq", name="uq_mqtt_event_node_boot_seq"),)

    id: int | None = Field(default=None, sa_column=Column(_EVENT_ID_TYPE, primary_key=True))
    node: str = Field(max_length=64)
    boot: int
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    event_id: str = Field(max_length=36)
    type: str = Field(max_length=32)
    ts: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    body: dict = Field(sa_column=Column(JSON, nullable=False))  # type: ignore[type-arg]


class DeadLetter(SQLModel, table=True):
    """A message the hub refused (malformed, unauthorised, failed to apply), with why."""

    __tablename__ = "dead_letter"
    __table_args__ = (Index("ix_dead_letter_received_at", "received_at"),)

    id: int | None = Field(default=None, primary_key=True)
    topic: str = Field(max_length=MAX_DEAD_TOPIC_CHARS)
    node: str | None = Field(default=None, max_length=64)
    reason: str = Field(max_length=MAX_REASON_CHARS)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class MqttCursor(SQLModel, table=True):
    """Highest contiguous committed ``seq`` per ``(node, boot)``: what the hub acks."""

    __tablename__ = "mqtt_cursor"

    node: str = Field(primary_key=True, max_length=64)
    boot: int = Field(primary_key=True)
    contiguous_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class MqttSeqGap(SQLModel, table=True):
    """A run of missing ``seq`` numbers seen for a ``(node, boot)``; closed once filled."""

    __tablename__ = "mqtt_seq_gap"
    __table_args__ = (
        UniqueConstraint("node", "boot", "first_missing", name="uq_mqtt_seq_gap_start"),
    )

    id: int | None = Field(default=None, primary_key=True)
    node: str = Field(max_length=64)
    boot: int
    first_missing: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_missing: int = Field(sa_column=Column(BigInteger, nullable=False))
    detected_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    closed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
