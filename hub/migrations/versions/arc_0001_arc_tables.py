"""ARC tables: journeys, staff tasks, outbox delivery state, do-not-contact, service catalogue,
trials and subscriptions (branch ``arc``).

Revision ID: arc_0001
Revises:
Create Date: 2026-11-29 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.models.types

revision: str = "arc_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("arc",)
# Foreign keys point at core tables (customer, store, outbox); no table references `timer`.
depends_on: str | Sequence[str] | None = "core_0001"

TABLES = (
    "data_service",
    "journey_definition",
    "journey_instance",
    "staff_task",
    "outbox_delivery",
    "do_not_contact",
    "trial",
    "subscription",
)


def upgrade() -> None:
    """Create the ARC tables."""
    op.create_table(
        "data_service",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("price_fen", sa.Integer(), nullable=False),
        sa.Column("trial_days", sa.Integer(), nullable=False),
        sa.Column("low_usage_mb", sa.Float(), nullable=False),
        sa.Column("bundle_offer", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("requires", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "journey_definition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_journey_name_version"),
    )
    op.create_index(
        op.f("ix_journey_definition_name"), "journey_definition", ["name"], unique=False
    )
    op.create_table(
        "journey_instance",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("definition_id", sa.Integer(), nullable=False),
        sa.Column("journey", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("active_key", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("current_step", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("waiting", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("started_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("exit_reason", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["definition_id"],
            ["journey_definition.id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("active_key", name="uq_journey_instance_active"),
    )
    op.create_index(
        "ix_journey_instance_customer", "journey_instance", ["customer_id", "journey"], unique=False
    )
    op.create_index(
        op.f("ix_journey_instance_definition_id"),
        "journey_instance",
        ["definition_id"],
        unique=False,
    )
    op.create_table(
        "staff_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("step_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("due_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["instance_id"], ["journey_instance.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("instance_id", "step_id", name="uq_staff_task_step"),
    )
    op.create_index(op.f("ix_staff_task_customer_id"), "staff_task", ["customer_id"], unique=False)
    op.create_index(op.f("ix_staff_task_store_id"), "staff_task", ["store_id"], unique=False)
    op.create_table(
        "outbox_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("source_kind", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
        sa.Column("source_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("updated_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("outbox_id"),
    )
    op.create_index(
        "ix_outbox_delivery_due", "outbox_delivery", ["status", "next_attempt_at"], unique=False
    )
    op.create_index(
        "ix_outbox_delivery_source", "outbox_delivery", ["source_kind", "source_id"], unique=False
    )
    op.create_table(
        "do_not_contact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_id", "channel", name="uq_dnc_customer_channel"),
    )
    op.create_table(
        "trial",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("service_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("city", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("staff_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("handset", sa.JSON(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("active_key", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("started_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("feedback", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("usage_mb", sa.Float(), nullable=True),
        sa.Column("converted_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("convert_channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("instance_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["data_service.id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("active_key", name="uq_trial_active"),
    )
    op.create_index(
        "ix_trial_customer_service", "trial", ["customer_id", "service_id"], unique=False
    )
    op.create_index(op.f("ix_trial_service_id"), "trial", ["service_id"], unique=False)
    op.create_index(op.f("ix_trial_store_id"), "trial", ["store_id"], unique=False)
    op.create_table(
        "subscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("service_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("trial_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("price_fen", sa.Integer(), nullable=False),
        sa.Column("started_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["data_service.id"],
        ),
        sa.ForeignKeyConstraint(
            ["trial_id"],
            ["trial.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_id", "service_id", name="uq_subscription"),
    )


def downgrade() -> None:
    """Drop the ARC tables (indexes go with them)."""
    for table in reversed(TABLES):
        op.drop_table(table)
