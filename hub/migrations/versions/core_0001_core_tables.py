"""Core hub tables: registry, auth, customers, check-ins (branch ``core``).

Revision ID: core_0001
Revises:
Create Date: 2026-11-29 01:35:37.411566
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.models.types

revision: str = "core_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("core",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("node_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_alert_node_id"), ["node_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_alert_store_id"), ["store_id"], unique=False)

    op.create_table(
        "beacon_hearing",
        sa.Column("node_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("short_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_heard_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("snr_db", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "short_id"),
    )
    op.create_table(
        "customer",
        sa.Column("consent_marketing_sms", sa.Boolean(), nullable=False),
        sa.Column("consent_marketing_push", sa.Boolean(), nullable=False),
        sa.Column("consent_marketing_call", sa.Boolean(), nullable=False),
        sa.Column("consent_analytics", sa.Boolean(), nullable=False),
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("phone_hash", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("phone_enc", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("gender", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("age_band", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("postal_code", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
        sa.Column(
            "microphone_disclosure_version",
            sqlmodel.sql.sqltypes.AutoString(length=16),
            nullable=True,
        ),
        sa.Column(
            "microphone_accepted_at", hub.models.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_checkin_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("phone_hash"),
    )
    op.create_table(
        "otp_challenge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phone_hash", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("code_hash", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("used_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("otp_challenge", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_otp_challenge_phone_hash"), ["phone_hash"], unique=False
        )

    op.create_table(
        "region",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "checkin_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("device_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("short_id", sa.Integer(), nullable=True),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("checkin_attempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_checkin_attempt_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_checkin_attempt_code"), ["code"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_checkin_attempt_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_checkin_attempt_device_id"), ["device_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_checkin_attempt_short_id"), ["short_id"], unique=False)

    op.create_table(
        "customer_session",
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("device_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    with op.batch_alter_table("customer_session", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_session_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "customer_tag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_id", "kind", "name"),
    )
    with op.batch_alter_table("customer_tag", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_tag_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("recipient_enc", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("body", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("dedupe_key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "phone_token",
        sa.Column("token", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("issued_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token"),
    )
    with op.batch_alter_table("phone_token", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_phone_token_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "store",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("timezone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("tier", sa.Enum("LOW", "MEDIUM", "HIGH", name="storetier"), nullable=False),
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("region_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("opening_hours", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["region.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("store", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_store_region_id"), ["region_id"], unique=False)

    op.create_table(
        "api_key",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("prefix", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("key_hash", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("region_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["region.id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prefix"),
    )
    op.create_table(
        "presence",
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("zone_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("node_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("seen_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store.id"],
        ),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    with op.batch_alter_table("presence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_presence_store_id"), ["store_id"], unique=False)

    op.create_table(
        "visit",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("started_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("checkins", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("visit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_visit_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_visit_started_at"), ["started_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_visit_store_id"), ["store_id"], unique=False)

    op.create_table(
        "zone",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("zone", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_zone_store_id"), ["store_id"], unique=False)

    op.create_table(
        "node",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("zone_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("boot", sa.Integer(), nullable=True),
        sa.Column("last_seen_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("config_version", sa.Integer(), nullable=False),
        sa.Column("reported_config_version", sa.Integer(), nullable=True),
        sa.Column("health", sa.JSON(), nullable=True),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store.id"],
        ),
        sa.ForeignKeyConstraint(
            ["zone_id"],
            ["zone.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("node", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_node_store_id"), ["store_id"], unique=False)

    op.create_table(
        "visit_zone",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visit_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("zone_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("entered_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["visit_id"], ["visit.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("visit_zone", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_visit_zone_visit_id"), ["visit_id"], unique=False)

    op.create_table(
        "beacon",
        sa.Column("short_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("node_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("zone_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("key_enc", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("previous_key_enc", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
        sa.Column("previous_key_until", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("range_m", sa.Float(), nullable=False),
        sa.Column("level_dbfs", sa.Float(), nullable=False),
        sa.Column("slot_s", sa.Integer(), nullable=False),
        sa.Column("created_at", hub.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", hub.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["node.id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store.id"],
        ),
        sa.ForeignKeyConstraint(
            ["zone_id"],
            ["zone.id"],
        ),
        sa.PrimaryKeyConstraint("short_id"),
        sa.UniqueConstraint("node_id"),
    )
    with op.batch_alter_table("beacon", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_beacon_store_id"), ["store_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("beacon", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_beacon_store_id"))

    op.drop_table("beacon")
    with op.batch_alter_table("visit_zone", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visit_zone_visit_id"))

    op.drop_table("visit_zone")
    with op.batch_alter_table("node", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_node_store_id"))

    op.drop_table("node")
    with op.batch_alter_table("zone", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_zone_store_id"))

    op.drop_table("zone")
    with op.batch_alter_table("visit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visit_store_id"))
        batch_op.drop_index(batch_op.f("ix_visit_started_at"))
        batch_op.drop_index(batch_op.f("ix_visit_customer_id"))

    op.drop_table("visit")
    with op.batch_alter_table("presence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_presence_store_id"))

    op.drop_table("presence")
    op.drop_table("api_key")
    with op.batch_alter_table("store", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_store_region_id"))

    op.drop_table("store")
    with op.batch_alter_table("phone_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_phone_token_customer_id"))

    op.drop_table("phone_token")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_customer_id"))

    op.drop_table("outbox")
    with op.batch_alter_table("customer_tag", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_tag_customer_id"))

    op.drop_table("customer_tag")
    with op.batch_alter_table("customer_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_session_customer_id"))

    op.drop_table("customer_session")
    with op.batch_alter_table("checkin_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_checkin_attempt_short_id"))
        batch_op.drop_index(batch_op.f("ix_checkin_attempt_device_id"))
        batch_op.drop_index(batch_op.f("ix_checkin_attempt_customer_id"))
        batch_op.drop_index(batch_op.f("ix_checkin_attempt_code"))
        batch_op.drop_index(batch_op.f("ix_checkin_attempt_at"))

    op.drop_table("checkin_attempt")
    op.drop_table("region")
    with op.batch_alter_table("otp_challenge", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_otp_challenge_phone_hash"))

    op.drop_table("otp_challenge")
    op.drop_table("customer")
    op.drop_table("beacon_hearing")
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_store_id"))
        batch_op.drop_index(batch_op.f("ix_alert_node_id"))
        batch_op.drop_index(batch_op.f("ix_alert_kind"))

    op.drop_table("alert")
