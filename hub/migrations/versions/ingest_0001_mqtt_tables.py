"""MQTT ingest tables: mqtt_event, dead_letter, mqtt_cursor, mqtt_seq_gap.

Revision ID: ingest_0001
Revises:
Create Date: 2026-11-29

Its own branch (``ingest``) so the ingest tables migrate independently of the API's;
``hub.db.migrate`` runs ``upgrade heads``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ingest_0001"
down_revision = None
branch_labels = ("ingest",)
depends_on = None

_TS = sa.DateTime(timezone=True)
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the ingest tables."""
    op.create_table(
        "mqtt_event",
        sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("boot", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.UniqueConstraint("node", "boot", "seq", name="uq_mqtt_event_node_boot_seq"),
    )
    op.create_table(
        "dead_letter",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(300), nullable=False),
        sa.Column("node", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
    )
    op.create_index("ix_dead_letter_received_at", "dead_letter", ["received_at"])
    op.create_table(
        "mqtt_cursor",
        sa.Column("node", sa.String(64), primary_key=True),
        sa.Column("boot", sa.Integer(), primary_key=True),
        sa.Column("contiguous_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "mqtt_seq_gap",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("boot", sa.Integer(), nullable=False),
        sa.Column("first_missing", sa.BigInteger(), nullable=False),
        sa.Column("last_missing", sa.BigInteger(), nullable=False),
        sa.Column("detected_at", _TS, nullable=False),
        sa.Column("closed_at", _TS, nullable=True),
        sa.UniqueConstraint("node", "boot", "first_missing", name="uq_mqtt_seq_gap_start"),
    )


def downgrade() -> None:
    """Drop the ingest tables."""
    op.drop_table("mqtt_seq_gap")
    op.drop_table("mqtt_cursor")
    op.drop_index("ix_dead_letter_received_at", table_name="dead_letter")
    op.drop_table("dead_letter")
    op.drop_table("mqtt_event")
