"""Campaigns: one row that changes whenever a campaign does (``campaign_index_version``).

Revision ID: campaigns_0002
Revises: campaigns_0001
Create Date: 2026-11-29 07:45:00

The live-campaign index cache (``hub.services.campaigns.index``) checked its version by
folding every live campaign's id and ``updated_at`` into one string on each evaluation
(~0.2 ms on SQLite with 200 live campaigns, growing with their number). Database
triggers now give every insert, delete and write of ``state`` or ``updated_at`` of a
campaign row (every lifecycle change sets ``updated_at``; budget updates touch neither)
a fresh random version in this one-row table, so the check reads one row by key. A
random value rather than a counter: a table emptied and refilled (a restore, the tests)
never comes back to a version some process has cached.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "campaigns_0002"
down_revision: str | None = "campaigns_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_BUMP = "INSERT OR REPLACE INTO campaign_index_version (id, version) VALUES (1, random())"
_SQLITE_TRIGGERS = {
    "campaign_index_version_insert": "AFTER INSERT ON campaign",
    "campaign_index_version_delete": "AFTER DELETE ON campaign",
    "campaign_index_version_update": "AFTER UPDATE OF state, updated_at ON campaign",
}
_PG_FUNCTION = """
CREATE FUNCTION campaign_index_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO campaign_index_version (id, version)
    VALUES (1, floor(random() * 9007199254740991)::bigint)
    ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version;
    RETURN NULL;
END
$$
"""
_PG_TRIGGERS = (
    "CREATE TRIGGER campaign_index_version_bump AFTER INSERT OR DELETE OR UPDATE OF state, "
    "updated_at ON campaign FOR EACH STATEMENT EXECUTE FUNCTION campaign_index_version_bump()",
    "CREATE TRIGGER campaign_index_version_truncate AFTER TRUNCATE ON campaign "
    "FOR EACH STATEMENT EXECUTE FUNCTION campaign_index_version_bump()",
)


def upgrade() -> None:
    """Create the table, its first version and the triggers."""
    op.create_table(
        "campaign_index_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for statement in _PG_TRIGGERS:
            op.execute(statement)
        op.execute(
            "INSERT INTO campaign_index_version (id, version) "
            "VALUES (1, floor(random() * 9007199254740991)::bigint)"
        )
    else:
        for name, when in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {_SQLITE_BUMP}; END")
        op.execute(_SQLITE_BUMP)


def downgrade() -> None:
    """Drop the triggers and the table."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS campaign_index_version_bump ON campaign")
        op.execute("DROP TRIGGER IF EXISTS campaign_index_version_truncate ON campaign")
        op.execute("DROP FUNCTION IF EXISTS campaign_index_version_bump()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("campaign_index_version")
