"""Kiosk tables: counter queue tickets and visit ratings (``kiosk``).

Revision ID: kiosk_0001
Revises:
Create Date: 2026-11-29 03:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.models.types

revision: str = "kiosk_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("kiosk",)
depends_on: str | Sequence[str] | None = "core_0001"


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "kiosk_queue_ticket",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("day", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("issued_at", hub.models.types.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["store_id"], ["store.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("store_id", "day", "number", name="uq_queue_number"),
    )
    op.create_index(
        op.f("ix_kiosk_queue_ticket_store_id"), "kiosk_queue_ticket", ["store_id"], unique=False
    )
    op.create_table(
        "kiosk_visit_rating",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("stars", sa.Integer(), nullable=False),
        sa.Column("comment", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("at", hub.models.types.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["store_id"], ["store.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_kiosk_visit_rating_store_id"), "kiosk_visit_rating", ["store_id"], unique=False
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_kiosk_visit_rating_store_id"), table_name="kiosk_visit_rating")
    op.drop_table("kiosk_visit_rating")
    op.drop_index(op.f("ix_kiosk_queue_ticket_store_id"), table_name="kiosk_queue_ticket")
    op.drop_table("kiosk_queue_ticket")
