"""Hot-path statements compiled once by SQLAlchemy and run on the DBAPI cursor.

SQLAlchemy's per-execution work for a statement, even ``exec_driver_sql`` (an execution
context, result set-up, event dispatch), costs more than SQLite takes to run an insert or
a keyed read: campaign evaluation on SQLite runs its statements this way. The statement
is still compiled by SQLAlchemy, and its values go through the bind processors SQLAlchemy
would apply (so a time is stored exactly as the ORM stores it). On the session's own
connection (so inside its transaction), the statement runs on a DBAPI cursor; the
engine's ``before_cursor_execute``/``after_cursor_execute`` listeners still see it (with
no execution context: ``context`` is None, and a listener's returned statement is not
used), and a driver error is raised as the SQLAlchemy exception it would have been
(``IntegrityError``...). Paired in one process against ``exec_driver_sql`` (the campaigns
bench's worlds, samples interleaved, load 8): what a paying check-in adds fell from 0.82
to 0.70 ms CPU at p50 (points), 1.08 to 0.89 ms (with a coupon).
Positional (SQLite's qmark) statements only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlmodel import Session


class PreparedResult:
    """What a ``Prepared`` run returned: its rows (fetched at once, so the statement is
    finished and its cursor closed) and the driver's row count."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def first(self) -> tuple[Any, ...] | None:
        """The first row, or None."""
        return self.rows[0] if self.rows else None

    def one(self) -> tuple[Any, ...]:
        """The one row there must be."""
        if len(self.rows) != 1:
            raise LookupError(f"expected one row, the statement returned {len(self.rows)}")
        return self.rows[0]

    def scalar_one(self) -> Any:
        """The first column of the one row there must be."""
        return self.one()[0]


class Prepared:
    """A Core statement compiled once for SQLite and run on the DBAPI cursor."""

    def __init__(self, statement: Any, dialect: Any, column_keys: Sequence[str] | None = None):
        compiled = statement.compile(
            dialect=dialect, column_keys=list(column_keys) if column_keys else None
        )
        # Positional (SQLite's qmark) and no Python-side column defaults to compute.
        assert compiled.positional and compiled.positiontup is not None
        assert not compiled.insert_prefetch and not compiled.update_prefetch
        self.sql = compiled.string
        self.slots: list[tuple[str, Any, Any]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self.slots.append((name, process, None if bind.required else bind.value))

    def values(
        self, params: dict[str, Any], seen: dict[tuple[int, int], tuple[Any, Any]] | None = None
    ) -> tuple[Any, ...]:
        """The positional values for ``params`` (a statement's own literals filled in).

        ``seen``: processed values by (processor, input object), shared by the rows of one
        batch (they carry the same ``now`` object many times; a processed time costs ~2 us).
        """
        out = []
        for name, process, default in self.slots:
            value = params.get(name, default)
            if process is not None and value is not None:
                if seen is None:
                    value = process(value)
                else:
                    key = (id(process), id(value))
                    hit = seen.get(key)
                    if hit is None or hit[0] is not value:
                        hit = seen[key] = (value, process(value))
                    value = hit[1]
            out.append(value)
        return tuple(out)

    def execute(self, session: Session, params: dict[str, Any]) -> PreparedResult:
        """Run once."""
        return self._run(session, self.values(params), many=False)

    def execute_many(self, session: Session, rows: Sequence[dict[str, Any]]) -> PreparedResult:
        """Run once per row (the driver's executemany)."""
        seen: dict[tuple[int, int], tuple[Any, Any]] = {}
        return self._run(session, [self.values(r, seen) for r in rows], many=True)

    def _run(self, session: Session, values: Any, many: bool) -> PreparedResult:
        """Run on a cursor of the session's connection, telling the engine's listeners."""
        conn = session.connection()
        cursor = conn.connection.cursor()
        dispatch = conn.dispatch
        if dispatch.before_cursor_execute:
            for listener in dispatch.before_cursor_execute:
                listener(conn, cursor, self.sql, values, None, many)
        try:
            if many:
                cursor.executemany(self.sql, values)
            else:
                cursor.execute(self.sql, values)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(self.sql, values, exc, sqlite3.Error, ismulti=many) from exc
        try:
            rows = cursor.fetchall() if cursor.description is not None else []
            rowcount = cursor.rowcount
        finally:
            cursor.close()
        if dispatch.after_cursor_execute:
            for listener in dispatch.after_cursor_execute:
                listener(conn, cursor, self.sql, values, None, many)
        return PreparedResult(rows, rowcount)
