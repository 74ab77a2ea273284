"""OAO tables: orders, dispatches, transitions, policies, store profiles, sheets (``oao``).

Revision ID: oao_0001
Revises:
Create Date: 2026-11-29 02:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.models.types

revision: str = "oao_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("oao",)
depends_on: str | Sequence[str] | None = "core_0001"


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "oao_region_policy",
        sa.Column("channel_rules", sa.JSON(), nullable=True),
        sa.Column("accept_minutes", sa.JSON(), nullable=True),
        sa.Column("grace_minutes", sa.JSON(), nullable=True),
        sa.Column("hop_limit", sa.Integer(), nullable=False),
        sa.Column("max_distance_km", sa.Float(), nullable=False),
        sa.Column("region_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("mode", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["region.id"],
        ),
        sa.PrimaryKeyConstraint("region_id"),
    )
    op.create_table(
        "oao_order",
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("product", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("region_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("window_start", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("window_end", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("priority", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("directed_store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("client_order_key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("hops", sa.Integer(), nullable=False),
        sa.Column("escalation_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("dispatched_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["region.id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_order_key"),
    )
    with op.batch_alter_table("oao_order", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oao_order_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_oao_order_region_id"), ["region_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_oao_order_status"), ["status"], unique=False)
        batch_op.create_index("ix_oao_order_store_status", ["store_id", "status"], unique=False)

    op.create_table(
        "oao_dispatch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("hop", sa.Integer(), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("policy", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=True),
        sa.Column("decided_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("outcome_reason", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("outcome_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["oao_order.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("oao_dispatch", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oao_dispatch_order_id"), ["order_id"], unique=False)

    op.create_table(
        "oao_sheet",
        sa.Column("current_plan", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("secondary_cards", sa.Integer(), nullable=True),
        sa.Column("set_top_box", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("broadband", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("spend_3m", sa.JSON(), nullable=True),
        sa.Column("suggestion", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("order_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("installer_key_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("due_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("filled_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("read_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("outcome_note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("closed_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["oao_order.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id"),
    )
    with op.batch_alter_table("oao_sheet", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oao_sheet_installer_key_id"), ["installer_key_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_oao_sheet_store_id"), ["store_id"], unique=False)

    op.create_table(
        "oao_store_profile",
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=True),
        sa.Column("order_capacity", sa.Integer(), nullable=False),
        sa.Column("installer_key_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["installer_key_id"],
            ["api_key.id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store.id"],
        ),
        sa.PrimaryKeyConstraint("store_id"),
    )
    op.create_table(
        "oao_transition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("from_status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("to_status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["oao_order.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("oao_transition", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oao_transition_order_id"), ["order_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("oao_transition", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oao_transition_order_id"))

    op.drop_table("oao_transition")
    op.drop_table("oao_store_profile")
    with op.batch_alter_table("oao_sheet", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oao_sheet_store_id"))
        batch_op.drop_index(batch_op.f("ix_oao_sheet_installer_key_id"))

    op.drop_table("oao_sheet")
    with op.batch_alter_table("oao_dispatch", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oao_dispatch_order_id"))

    op.drop_table("oao_dispatch")
    with op.batch_alter_table("oao_order", schema=None) as batch_op:
        batch_op.drop_index("ix_oao_order_store_status")
        batch_op.drop_index(batch_op.f("ix_oao_order_status"))
        batch_op.drop_index(batch_op.f("ix_oao_order_region_id"))
        batch_op.drop_index(batch_op.f("ix_oao_order_customer_id"))

    op.drop_table("oao_order")
    op.drop_table("oao_region_policy")
