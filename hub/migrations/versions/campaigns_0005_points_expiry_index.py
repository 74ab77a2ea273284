"""Points: index the ledger by expiry date (partial), drop the unused index on ``at``.

Revision ID: campaigns_0005
Revises: campaigns_0004
Create Date: 2026-11-29 14:00:00

The daily expiry sweep (``hub.services.points._expire_day``) selects the customers with
a lot expiring on its day: without an index on ``expires_at`` that read the whole
ledger, once a day, inside the sweep's transaction (on SQLite while holding the write
lock every check-in waits for). Only credits carry a date, so the index is partial.
``ix_points_entry_at`` served no query; dropping it keeps a credit's index writes at
what they were (spends, expiries and adjustments write one index entry fewer).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "campaigns_0005"
down_revision: str | None = "campaigns_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHERE = sa.text("expires_at IS NOT NULL")


def upgrade() -> None:
    """Create the partial expiry index, drop the index on ``at``."""
    op.create_index("ix_points_entry_expires_at", "points_entry", ["expires_at"],
                    sqlite_where=_WHERE, postgresql_where=_WHERE)
    op.drop_index("ix_points_entry_at", table_name="points_entry")


def downgrade() -> None:
    """The other way round."""
    op.create_index("ix_points_entry_at", "points_entry", ["at"], unique=False)
    op.drop_index("ix_points_entry_expires_at", table_name="points_entry")
