"""Campaigns, coupons, points and analytics tables (branch ``campaigns``).

Revision ID: campaigns_0001
Revises:
Create Date: 2026-11-29 02:10:00

Its own branch; ``depends_on`` the core branch so the foreign keys to region, store
and customer have their tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.models.types

revision: str = "campaigns_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("campaigns",)
depends_on: str | Sequence[str] | None = "core_0001"

_TABLES = (
    "store_revenue",
    "coupon_event",
    "campaign_grant",
    "coupon",
    "campaign",
    "points_entry",
    "points_account",
    "coupon_template",
)


def upgrade() -> None:
    """Create the campaign, coupon, points and revenue tables."""
    op.create_table(
        "coupon_template",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("item", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("min_spend_cents", sa.Integer(), nullable=False),
        sa.Column("valid_days", sa.Integer(), nullable=False),
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("region_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("stores", sa.JSON(), nullable=True),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["region.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "points_account",
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("balance", sa.Integer(), nullable=False),
        sa.Column("updated_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("balance >= 0", name="ck_points_balance"),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.create_table(
        "points_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("balance_after", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("campaign_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("expires_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("points_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_points_entry_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_points_entry_customer_id"), ["customer_id"], unique=False
        )
    op.create_table(
        "campaign",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("region_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("trigger", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("trigger_param", sa.Integer(), nullable=True),
        sa.Column("audience", sa.JSON(), nullable=True),
        sa.Column("scope", sa.JSON(), nullable=True),
        sa.Column("schedule", sa.JSON(), nullable=True),
        sa.Column("reward_kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("coupon_template_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("points", sa.Integer(), nullable=True),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("cap_per_customer_day", sa.Integer(), nullable=True),
        sa.Column("cap_per_customer_total", sa.Integer(), nullable=True),
        sa.Column("budget_total", sa.Integer(), nullable=True),
        sa.Column("budget_remaining", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("exclusive", sa.Boolean(), nullable=False),
        sa.Column("holdout_share", sa.Float(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("approved_by", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("approved_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("budget_remaining IS NULL OR budget_remaining >= 0", name="ck_budget"),
        sa.ForeignKeyConstraint(
            ["coupon_template_id"],
            ["coupon_template.id"],
        ),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["region.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaign_region_id"), ["region_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_campaign_state"), ["state"], unique=False)
    op.create_table(
        "coupon",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("template_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("campaign_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("issued_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("redeemed_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("redeemed_store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("spend_cents", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["coupon_template.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    with op.batch_alter_table("coupon", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_coupon_campaign_id"), ["campaign_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_coupon_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index("ix_coupon_template_state", ["template_id", "state"], unique=False)
    op.create_table(
        "campaign_grant",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("campaign_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source_event", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("trigger", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("reward_kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("coupon_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("points", sa.Integer(), nullable=True),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("store_day", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("seen_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
        ),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "source_event", name="uq_grant_campaign_event"),
    )
    with op.batch_alter_table("campaign_grant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaign_grant_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_campaign_grant_campaign_id"), ["campaign_id"], unique=False
        )
        batch_op.create_index("ix_grant_customer_day", ["customer_id", "store_day"], unique=False)
    op.create_table(
        "coupon_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("coupon_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("client_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["coupon_id"],
            ["coupon.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("action", "client_key", name="uq_coupon_event_key"),
    )
    with op.batch_alter_table("coupon_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_coupon_event_coupon_id"), ["coupon_id"], unique=False)
    op.create_table(
        "store_revenue",
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("month", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("revenue_cents", sa.Integer(), nullable=False),
        sa.Column("reported_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store.id"],
        ),
        sa.PrimaryKeyConstraint("store_id", "month"),
    )


def downgrade() -> None:
    """Drop them again (dependents first)."""
    for table in _TABLES:
        op.drop_table(table)
