"""Alembic environment: runs on the engine the hub hands over, or on ``sqlalchemy.url``."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import hub.models  # noqa: F401  (registers every table on SQLModel.metadata)
from hub.db import make_engine

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    """Run migrations on the hub's engine (SQLite batch mode for ALTERs)."""
    engine = context.config.attributes.get("engine")
    if engine is None:
        engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
