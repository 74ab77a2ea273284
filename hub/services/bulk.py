"""Set-based SQL for batch writers (journeys, OAO): one statement per kind of write per batch.

A batch writer (the journey engine, OAO) touches thousands of rows per transaction;
going through the ORM (or even Core's per-row parameter processing) would cost more than
the database work. This helper hands rows straight to the driver's ``executemany`` on
the session's connection (so it shares the session's transaction and savepoints), in the
dialect's parameter style: SQL is written with ``?`` for a value and ``?j`` for a JSON
value, and becomes ``%s`` / ``%s::json`` on PostgreSQL. Timestamps go through the same
bind processor as the ``UtcDateTime`` columns, so rows written here read back exactly
like ORM rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session

from hub.models.types import UtcDateTime

# Values per IN list / statement: under SQLite's variable limit with room to spare, and
# large enough that a batch of instances needs only a few round trips.
CHUNK = 2_000


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    """``items`` in slices of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i:i + size]


class BulkSql:
    """Raw ``executemany`` in the session's transaction, with UTC timestamps and JSON."""

    def __init__(self, session: Session) -> None:
        """Bind to the session's connection (starting its transaction if needed)."""
        self.connection = session.connection()
        dialect = self.connection.dialect
        self.postgres = dialect.name == "postgresql"
        self._dt_bind: Callable[[Any], Any] | None = UtcDateTime()._cached_bind_processor(
            dialect)
        self._dt_cache: dict[datetime, Any] = {}
        self._sql: dict[str, str] = {}

    def _text(self, sql: str) -> str:
        """``sql`` in the dialect's parameter style."""
        out = self._sql.get(sql)
        if out is None:
            if self.postgres:
                out = sql.replace("?j", "%s::json").replace("?", "%s")
            else:
                out = sql.replace("?j", "?")
            self._sql[sql] = out
        return out

    def many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> int:
        """Run ``sql`` once per row (one driver call); return the rows it changed."""
        if not rows:
            return 0
        result = self.connection.exec_driver_sql(self._text(sql), list(rows))
        return int(result.rowcount)

    def one(self, sql: str, params: tuple[Any, ...]) -> int:
        """Run ``sql`` once; return the rows it changed."""
        return int(self.connection.exec_driver_sql(self._text(sql), params).rowcount)

    def rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Rows of a query as the driver returns them (plain tuples, no type processing)."""
        cursor = self.connection.connection.cursor()
        try:
            cursor.execute(self._text(sql), tuple(params))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def dt(self, value: datetime | None) -> Any:
        """A timestamp as the UtcDateTime column stores it (cached: batches share a few)."""
        if value is None:
            return None
        out = self._dt_cache.get(value)
        if out is None:
            out = self._dt_bind(value) if self._dt_bind is not None else value
            self._dt_cache[value] = out
        return out

    @staticmethod
    def js(value: Any) -> str:
        """A JSON value as text (the ``?j`` placeholder casts it on PostgreSQL)."""
        return json.dumps(value, separators=(",", ":"))
