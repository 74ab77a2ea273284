"""Campaigns: a pool code added to any coupon template changes ``campaign_index_version``.

Revision ID: campaigns_0004
Revises: campaigns_0003
Create Date: 2026-11-29 11:00:00

The live-campaign index (``hub.services.campaigns.index``) now also knows which of its
campaigns' coupon templates have pool codes left; the others' grants get new codes
without looking at the pool (one statement less per coupon a check-in gives). So that
every hub process learns of a new pool at its next evaluation, inserting a coupon in the
``pool`` state (an import, or a row written behind the services' back), or setting a
coupon's state to ``pool``, gives the index a new version, as a campaign write does
(campaigns_0002). An import of many codes bumps it once per transaction on PostgreSQL
(a transaction-local flag); on SQLite once per row (a one-row upsert each).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "campaigns_0004"
down_revision: str | None = "campaigns_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_BUMP = "INSERT OR REPLACE INTO campaign_index_version (id, version) VALUES (1, random())"
_SQLITE_TRIGGERS = {
    "campaign_index_version_pool_insert": "AFTER INSERT ON coupon WHEN NEW.state = 'pool'",
    "campaign_index_version_pool_update": (
        "AFTER UPDATE OF state ON coupon WHEN NEW.state = 'pool' AND OLD.state <> 'pool'"
    ),
}
_PG_FUNCTION = """
CREATE FUNCTION campaign_index_version_pool_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('storewave.pool_version_bumped', true) IS DISTINCT FROM 'yes' THEN
        INSERT INTO campaign_index_version (id, version)
        VALUES (1, floor(random() * 9007199254740991)::bigint)
        ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version;
        PERFORM set_config('storewave.pool_version_bumped', 'yes', true);
    END IF;
    RETURN NULL;
END
$$
"""
_PG_TRIGGERS = (
    "CREATE TRIGGER campaign_index_version_pool_insert AFTER INSERT ON coupon "
    "FOR EACH ROW WHEN (NEW.state = 'pool') "
    "EXECUTE FUNCTION campaign_index_version_pool_bump()",
    "CREATE TRIGGER campaign_index_version_pool_update AFTER UPDATE OF state ON coupon "
    "FOR EACH ROW WHEN (NEW.state = 'pool' AND OLD.state <> 'pool') "
    "EXECUTE FUNCTION campaign_index_version_pool_bump()",
)


def upgrade() -> None:
    """Create the triggers."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for statement in _PG_TRIGGERS:
            op.execute(statement)
    else:
        for name, when in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {_SQLITE_BUMP}; END")


def downgrade() -> None:
    """Drop the triggers."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS campaign_index_version_pool_insert ON coupon")
        op.execute("DROP TRIGGER IF EXISTS campaign_index_version_pool_update ON coupon")
        op.execute("DROP FUNCTION IF EXISTS campaign_index_version_pool_bump()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
