"""``Prepared``: SQLite statements compiled once and run on the DBAPI cursor."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from hub.db import make_engine
from hub.models.types import UtcDateTime
from hub.services.campaigns.prepared import Prepared

_META = MetaData()
_THING = Table(
    "thing",
    _META,
    Column("id", Integer, primary_key=True),
    Column("name", String(20), nullable=False, unique=True),
    Column("at", UtcDateTime, nullable=True),
)


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.sqlite3'}")
    _META.create_all(engine)
    yield engine
    engine.dispose()


def test_runs_in_the_session_transaction_with_bind_processing(engine: Any) -> None:
    """Rows go in the session's transaction (gone on rollback, kept on commit), times are
    stored as the ORM stores them, RETURNING rows and row counts come back."""
    at = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    add = Prepared(insert(_THING), engine.dialect, ["id", "name", "at"])
    rename = Prepared(
        update(_THING).where(_THING.c.id == 1).values(name="renamed").returning(_THING.c.name),
        engine.dialect,
    )
    with Session(engine) as session:
        add.execute_many(session, [{"id": 1, "name": "a", "at": at}, {"id": 2, "name": "b"}])
        session.rollback()
    with Session(engine) as session:
        assert session.connection().execute(select(_THING)).all() == []
    with Session(engine) as session:
        added = add.execute_many(
            session, [{"id": 1, "name": "a", "at": at}, {"id": 2, "name": "b"}]
        )
        assert added.rowcount == 2
        assert rename.execute(session, {}).one() == ("renamed",)
        session.commit()
    with Session(engine) as session:
        rows = session.connection().execute(select(_THING).order_by(_THING.c.id)).all()
        assert [tuple(r) for r in rows] == [(1, "renamed", at), (2, "b", None)]


def test_errors_are_sqlalchemy_exceptions_and_listeners_see_the_statement(engine: Any) -> None:
    """A unique violation is SQLAlchemy's IntegrityError (as ``exec_driver_sql`` raised
    it); the engine's cursor listeners see each statement once, executemany included."""
    add = Prepared(insert(_THING), engine.dialect, ["id", "name"])
    seen: list[tuple[str, bool]] = []

    def record(_c: Any, _cur: Any, statement: str, _p: Any, _ctx: Any, many: bool) -> None:
        seen.append((statement.split()[0], many))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with Session(engine) as session:
            add.execute_many(session, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
            with pytest.raises(IntegrityError):
                add.execute(session, {"id": 3, "name": "a"})
            session.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert [s for s in seen if s[0] != "BEGIN"] == [("INSERT", True), ("INSERT", False)]
