"""Durable timers table (branch ``timers``).

Revision ID: timers_0001
Revises:
Create Date: 2026-11-29 01:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.models.types

revision: str = "timers_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("timers",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the timer table."""
    op.create_table(
        "timer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("due_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "key", name="uq_timer_kind_key"),
    )
    op.create_index("ix_timer_state_due", "timer", ["state", "due_at"], unique=False)


def downgrade() -> None:
    """Drop the timer table."""
    op.drop_index("ix_timer_state_due", table_name="timer")
    op.drop_table("timer")
