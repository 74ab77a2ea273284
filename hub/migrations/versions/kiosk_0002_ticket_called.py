"""Kiosk: staff call queue tickets to the counter (``called_at``).

Revision ID: kiosk_0002
Revises: kiosk_0001
Create Date: 2026-11-29 04:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.models.types

revision: str = "kiosk_0002"
down_revision: str | None = "kiosk_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("kiosk_queue_ticket") as batch:
        batch.add_column(sa.Column("called_at", hub.models.types.UtcDateTime(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("kiosk_queue_ticket") as batch:
        batch.drop_column("called_at")
