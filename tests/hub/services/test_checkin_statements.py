"""hub.db.DriverStatement (the check-in's and the campaign writes'), on SQLite and PostgreSQL.

They bypass SQLAlchemy's execution layer, so these check what it would otherwise
guarantee: values stored and read back exactly as SQLAlchemy stores and reads them, the
caller's transaction, SQLAlchemy's exception classes, the statement's own literals.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, event, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from sqlmodel import select as orm_select

from hub.db import DriverStatement, run_all
from hub.models.checkins import CheckinAttempt

_ATTEMPT = CheckinAttempt.__table__  # type: ignore[attr-defined]
_KEYS = ("customer_id", "device_id", "code", "at", "short_id", "store_id", "outcome")
INSERT = DriverStatement(insert(_ATTEMPT).inline(), _KEYS)
INSERT_WITH_ID = DriverStatement(insert(_ATTEMPT).inline(), ("id", *_KEYS))
READ = DriverStatement(
    select(_ATTEMPT.c.id, _ATTEMPT.c.at, _ATTEMPT.c.outcome).where(
        _ATTEMPT.c.code == bindparam("code")
    )
)
ACCEPTED = DriverStatement(
    select(func.count())
    .select_from(_ATTEMPT)
    .where(
        _ATTEMPT.c.code == bindparam("code"),
        _ATTEMPT.c.outcome.in_((literal("accepted"), literal("same_visit"))),
    )
)
# 09:30 in Shanghai: stored as 01:30 UTC.
AT = datetime(2026, 11, 30, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8)))


def _attempt(code: str, outcome: str = "accepted") -> dict[str, object]:
    return {
        "customer_id": None,
        "device_id": "dev-1",
        "code": code,
        "at": AT,
        "short_id": 101,
        "store_id": "sto_x",
        "outcome": outcome,
    }


def test_values_round_trip_as_sqlalchemy_stores_and_reads_them(engine: Engine) -> None:
    """A row written by the driver statement reads back through the ORM as the same aware
    UTC time; one written by SQLAlchemy reads back through the driver statement the same."""
    with Session(engine) as session:
        INSERT.run(session.connection(), _attempt("aaaaaaaaaaaa"))
        session.execute(insert(_ATTEMPT), [_attempt("bbbbbbbbbbbb")])
        session.commit()
    with Session(engine) as session:
        rows = session.exec(orm_select(CheckinAttempt).order_by(CheckinAttempt.code)).all()
        assert [(r.code, r.at, r.outcome) for r in rows] == [
            ("aaaaaaaaaaaa", AT, "accepted"),
            ("bbbbbbbbbbbb", AT, "accepted"),
        ]
        assert all(r.at.tzinfo == UTC for r in rows)
        for code in ("aaaaaaaaaaaa", "bbbbbbbbbbbb"):
            row = READ.first(session.connection(), {"code": code})
            assert row is not None
            _, at, outcome = row
            assert (at, at.tzinfo, outcome) == (AT, UTC, "accepted")
        as_mapping = READ.mapping(session.connection(), {"code": "aaaaaaaaaaaa"})
        assert as_mapping is not None and set(as_mapping) == {"id", "at", "outcome"}
        assert READ.first(session.connection(), {"code": "cccccccccccc"}) is None


def test_they_run_in_the_callers_transaction(engine: Engine) -> None:
    """Rolled back with the session; seen by the session's own later statements."""
    with Session(engine) as session:
        INSERT.run(session.connection(), _attempt("aaaaaaaaaaaa"))
        seen = session.execute(
            select(func.count()).select_from(_ATTEMPT).where(_ATTEMPT.c.code == "aaaaaaaaaaaa")
        ).scalar_one()
        assert seen == 1
        session.rollback()
    with Session(engine) as session:
        assert session.exec(orm_select(CheckinAttempt)).all() == []


def test_driver_errors_are_sqlalchemys(engine: Engine) -> None:
    """A duplicate key is SQLAlchemy's IntegrityError (the API maps it to 409)."""
    with Session(engine) as session:
        INSERT_WITH_ID.run(session.connection(), {"id": 7, **_attempt("aaaaaaaaaaaa")})
        with pytest.raises(IntegrityError):
            INSERT_WITH_ID.run(session.connection(), {"id": 7, **_attempt("bbbbbbbbbbbb")})
        session.rollback()


def test_the_statements_own_literals_and_missing_values(engine: Engine) -> None:
    """Literals compiled into the statement are sent with it; a missing value is an error,
    not a silent NULL."""
    with Session(engine) as session:
        connection = session.connection()
        for outcome in ("accepted", "same_visit", "bad_code"):
            INSERT.run(connection, _attempt("aaaaaaaaaaaa", outcome))
        assert ACCEPTED.first(connection, {"code": "aaaaaaaaaaaa"}) == (2,)
        with pytest.raises(KeyError, match="code"):
            ACCEPTED.first(connection, {})
        session.rollback()


def test_the_sql_is_what_sqlalchemy_compiles(engine: Engine) -> None:
    """One code path: the text sent is SQLAlchemy's own compilation for this database."""
    statement = select(_ATTEMPT.c.id).where(_ATTEMPT.c.code == bindparam("code"))
    expected = str(statement.compile(dialect=engine.dialect))
    assert DriverStatement(statement).sql(engine.dialect) == expected


def test_engine_cursor_listeners_still_see_them(engine: Engine) -> None:
    """Statement counting and tracing keep working: the listeners are told, before and after."""
    seen: list[tuple[str, str]] = []

    def before(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        seen.append(("before", statement))

    def after(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        seen.append(("after", statement))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        with Session(engine) as session:
            connection = session.connection()
            seen.clear()  # whatever beginning the transaction ran
            INSERT.run(connection, _attempt("aaaaaaaaaaaa"))
            session.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    sql = INSERT.sql(engine.dialect)
    assert seen == [("before", sql), ("after", sql)]


def test_a_batch_of_writes_runs_in_order_and_fails_as_a_whole(engine: Engine) -> None:
    """run_all (PostgreSQL: one pipeline): every write lands, in order; a duplicate key
    anywhere in the batch is SQLAlchemy's IntegrityError."""
    with Session(engine) as session:
        connection = session.connection()
        run_all(
            connection,
            [
                (INSERT_WITH_ID, {"id": 1, **_attempt("aaaaaaaaaaaa")}),
                (INSERT_WITH_ID, {"id": 2, **_attempt("aaaaaaaaaaaa", "same_visit")}),
                (INSERT_WITH_ID, {"id": 3, **_attempt("aaaaaaaaaaaa", "bad_code")}),
            ],
        )
        assert ACCEPTED.first(connection, {"code": "aaaaaaaaaaaa"}) == (2,)
        with pytest.raises(IntegrityError):
            run_all(
                connection,
                [
                    (INSERT_WITH_ID, {"id": 4, **_attempt("bbbbbbbbbbbb")}),
                    (INSERT_WITH_ID, {"id": 1, **_attempt("bbbbbbbbbbbb")}),
                ],
            )
        session.rollback()
    with Session(engine) as session:
        assert session.exec(orm_select(CheckinAttempt)).all() == []


def test_run_many_is_one_executemany_with_the_summed_row_count(engine: Engine) -> None:
    """``run_many`` (the campaign writes' executemany): every row lands, with its values
    processed as for one row (the same time object in many rows too); the listeners see one
    statement, marked executemany; the row count is all rows' (an UPDATE matching nothing
    adds 0); a duplicate key anywhere is SQLAlchemy's IntegrityError."""
    rename = DriverStatement(
        update(_ATTEMPT).where(_ATTEMPT.c.code == bindparam("c")).values(outcome=bindparam("o"))
    )
    seen: list[tuple[str, bool]] = []

    def record(_c: Any, _cur: Any, statement: str, _p: Any, _ctx: Any, many: bool) -> None:
        seen.append((statement.split()[0], many))

    rows = [_attempt(code) for code in ("aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc")]
    with Session(engine) as session:
        connection = session.connection()
        event.listen(engine, "before_cursor_execute", record)
        try:
            assert INSERT.run_many(connection, rows) == 3
            changed = rename.run_many(
                connection,
                [{"c": "aaaaaaaaaaaa", "o": "bad_code"}, {"c": "zzzzzzzzzzzz", "o": "bad_code"}],
            )
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert changed == 1
        assert seen == [("INSERT", True), ("UPDATE", True)]
        assert ACCEPTED.first(connection, {"code": "bbbbbbbbbbbb"}) == (1,)
        with pytest.raises(IntegrityError):
            INSERT_WITH_ID.run_many(
                connection,
                [{"id": 1, **_attempt("dddddddddddd")}, {"id": 1, **_attempt("eeeeeeeeeeee")}],
            )
        session.rollback()
    with Session(engine) as session:
        assert session.exec(orm_select(CheckinAttempt)).all() == []
        INSERT.run_many(session.connection(), rows)
        session.commit()
    with Session(engine) as session:
        stored = session.exec(orm_select(CheckinAttempt).order_by(CheckinAttempt.code)).all()
        assert [(r.code, r.at, r.outcome) for r in stored] == [
            (code, AT, "accepted") for code in ("aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc")
        ]
        with pytest.raises(KeyError, match="code"):
            INSERT.run_many(
                session.connection(), [{k: v for k, v in rows[0].items() if k != "code"}]
            )


def test_returning_rows_are_read_and_processed(engine: Engine) -> None:
    """An UPDATE ... RETURNING (the coupon pool claim, the points upsert) gives its row,
    columns processed as SQLAlchemy reads them; ``one`` insists on a row."""
    relabel = DriverStatement(
        update(_ATTEMPT)
        .where(_ATTEMPT.c.code == bindparam("c"))
        .values(outcome="same_visit")
        .returning(_ATTEMPT.c.outcome, _ATTEMPT.c.at)
    )
    with Session(engine) as session:
        connection = session.connection()
        INSERT.run(connection, _attempt("aaaaaaaaaaaa"))
        outcome, at = relabel.one(connection, {"c": "aaaaaaaaaaaa"})
        assert (outcome, at, at.tzinfo) == ("same_visit", AT, UTC)
        assert relabel.keys == ("outcome", "at")
        assert relabel.first(connection, {"c": "zzzzzzzzzzzz"}) is None
        with pytest.raises(LookupError):
            relabel.one(connection, {"c": "zzzzzzzzzzzz"})
        assert ACCEPTED.first(connection, {"code": "aaaaaaaaaaaa"}) == (1,)
        session.rollback()
