"""Create the ingest tables by running the ingest Alembic branch's own migration directly.

The hub runs every branch with ``hub.db.migrate`` (``upgrade heads``); tests and the
benchmark use this to get exactly the ingest tables on a scratch database.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

_VERSIONS = Path(__file__).resolve().parent.parent / "migrations" / "versions"
_MIGRATION = _VERSIONS / "ingest_0001_mqtt_tables.py"


def upgrade_ingest(engine: Engine) -> None:
    """Run ``ingest_0001``'s upgrade on ``engine`` unless its tables already exist."""
    if inspect(engine).has_table("mqtt_event"):
        return
    spec = importlib.util.spec_from_file_location("ingest_0001", _MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with engine.begin() as conn:
        ctx = MigrationContext.configure(conn)
        with Operations.context(ctx):
            spec.loader.exec_module(module)
            module.upgrade()
