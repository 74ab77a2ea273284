"""The ingest's two bulk statements, a whole batch bound as ONE JSON parameter.

With one bound parameter per value, SQLAlchemy compiled a 4,000-parameter VALUES list
on every SQLite batch and psycopg quoted every array element of the PostgreSQL
``unnest`` form in Python (text arrays go through a regex per element): 40-60 us of
client CPU per event, measured. ``json.dumps`` of the batch runs in C, the database's
own JSON functions (PostgreSQL ``json_to_recordset``, SQLite ``json_each``) unpack it,
and the statement texts are constant, so each is parsed and cached once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, text
from sqlalchemy.engine import Dialect
from sqlmodel import Session

EVENT_COLUMNS = ("node", "boot", "seq", "event_id", "type", "ts", "received_at", "body")
CURSOR_COLUMNS = ("node", "boot", "contiguous_seq", "updated_at")
# Columns holding a datetime: sent as text in the dialect's own storage format.
_TIME_COLUMNS = frozenset({"ts", "received_at", "updated_at"})

_PG_INSERT_EVENTS = text(
    "INSERT INTO mqtt_event (node, boot, seq, event_id, type, ts, received_at, body) "
    "SELECT r.node, r.boot, r.seq, r.event_id, r.type, r.ts, r.received_at, r.body "
    "FROM json_to_recordset(CAST(:rows AS json)) AS r(node text, boot integer, seq bigint, "
    "event_id text, type text, ts timestamptz, received_at timestamptz, body json) "
    "ON CONFLICT (node, boot, seq) DO NOTHING RETURNING node, boot, seq"
)
_PG_UPSERT_CURSORS = text(
    "INSERT INTO mqtt_cursor (node, boot, contiguous_seq, updated_at) "
    "SELECT r.node, r.boot, r.contiguous_seq, r.updated_at "
    "FROM json_to_recordset(CAST(:rows AS json)) AS r(node text, boot integer, "
    "contiguous_seq bigint, updated_at timestamptz) "
    "ON CONFLICT (node, boot) DO UPDATE SET "
    "contiguous_seq = GREATEST(mqtt_cursor.contiguous_seq, EXCLUDED.contiguous_seq), "
    "updated_at = EXCLUDED.updated_at"
)


def _sqlite_columns(names: tuple[str, ...]) -> str:
    """``json_extract(value, '$.name')`` for each column of a ``json_each`` row."""
    return ", ".join(f"json_extract(value, '$.{name}')" for name in names)


# SQLite's parser needs the ``WHERE true`` to tell ON CONFLICT from a join constraint.
_SQLITE_INSERT_EVENTS = text(
    f"INSERT INTO mqtt_event ({', '.join(EVENT_COLUMNS)}) "
    f"SELECT {_sqlite_columns(EVENT_COLUMNS)} FROM json_each(:rows) WHERE true "
    "ON CONFLICT (node, boot, seq) DO NOTHING RETURNING node, boot, seq"
)
_SQLITE_UPSERT_CURSORS = text(
    f"INSERT INTO mqtt_cursor ({', '.join(CURSOR_COLUMNS)}) "
    f"SELECT {_sqlite_columns(CURSOR_COLUMNS)} FROM json_each(:rows) WHERE true "
    "ON CONFLICT (node, boot) DO UPDATE SET "
    "contiguous_seq = max(mqtt_cursor.contiguous_seq, excluded.contiguous_seq), "
    "updated_at = excluded.updated_at"
)

_TIME_FORMATS: dict[str, Callable[[datetime], str]] = {}


def _time_format(dialect: Dialect) -> Callable[[datetime], str]:
    """How ``dialect`` stores a ``DateTime(timezone=True)`` value, as text.

    PostgreSQL parses ISO 8601 with its offset. SQLite has no time type: SQLAlchemy
    stores its own text layout, so its bind processor writes exactly what the ORM would
    (and reads back).
    """
    if dialect.name not in _TIME_FORMATS:
        if dialect.name == "postgresql":
            _TIME_FORMATS[dialect.name] = datetime.isoformat
        else:
            processor = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
            if processor is None:
                raise RuntimeError(f"no DateTime text format for dialect {dialect.name!r}")
            _TIME_FORMATS[dialect.name] = processor
    return _TIME_FORMATS[dialect.name]


def _rows_json(dialect: Dialect, rows: list[dict[str, Any]], names: tuple[str, ...]) -> str:
    """The rows as one compact JSON array of objects, timestamps in the dialect's format."""
    fmt = _time_format(dialect)
    times = [n for n in names if n in _TIME_COLUMNS]
    out = []
    for row in rows:
        item = dict(row)  # rows hold exactly ``names`` (event or cursor rows)
        for name in times:
            item[name] = fmt(item[name])
        out.append(item)
    return json.dumps(out, separators=(",", ":"))


def insert_events(session: Session, rows: list[dict[str, Any]]) -> set[tuple[str, int, int]]:
    """Insert event rows, skipping (node, boot, seq) already stored; return the new keys."""
    dialect = session.get_bind().dialect
    stmt = _PG_INSERT_EVENTS if dialect.name == "postgresql" else _SQLITE_INSERT_EVENTS
    result = session.execute(stmt, {"rows": _rows_json(dialect, rows, EVENT_COLUMNS)})
    return {(str(n), int(b), int(q)) for n, b, q in result.all()}


def upsert_cursors(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert or advance each (node, boot) cursor; a cursor never moves back."""
    dialect = session.get_bind().dialect
    stmt = _PG_UPSERT_CURSORS if dialect.name == "postgresql" else _SQLITE_UPSERT_CURSORS
    session.execute(stmt, {"rows": _rows_json(dialect, rows, CURSOR_COLUMNS)})
