"""Campaigns: drop ``ix_campaign_grant_campaign_id`` (the unique key already leads with it).

Revision ID: campaigns_0003
Revises: campaigns_0002
Create Date: 2026-11-29 08:35:00

``uq_grant_campaign_event`` is (campaign_id, source_event): every lookup by campaign uses
it. The separate index cost every decision row one more B-tree page written (a paying
check-in writes ~6 decision rows, each in its campaign's part of the index): ~4 of the
~25 pages a paying check-in adds to SQLite's WAL.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "campaigns_0003"
down_revision: str | None = "campaigns_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Drop the index."""
    with op.batch_alter_table("campaign_grant") as batch:
        batch.drop_index("ix_campaign_grant_campaign_id")


def downgrade() -> None:
    """Create it again."""
    with op.batch_alter_table("campaign_grant") as batch:
        batch.create_index("ix_campaign_grant_campaign_id", ["campaign_id"], unique=False)
