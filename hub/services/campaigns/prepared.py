"""Hot-path statements compiled once by SQLAlchemy and run with ``exec_driver_sql``.

SQLAlchemy's per-execution work for a Core statement (cache key, compiled-cache lookup,
result set-up) costs ~70 us, more than SQLite takes to run an insert or a keyed read:
campaign evaluation on SQLite runs its statements this way. The statement is still
compiled by SQLAlchemy, its values go through the bind processors SQLAlchemy would apply
(so a time is stored exactly as the ORM stores it), and ``exec_driver_sql`` keeps the
engine's events and error translation. Positional (SQLite's qmark) statements only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session


class Prepared:
    """A Core statement compiled once for SQLite and run with ``exec_driver_sql``."""

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

    def execute(self, session: Session, params: dict[str, Any]) -> Any:
        """Run once."""
        return session.connection().exec_driver_sql(self.sql, self.values(params))

    def execute_many(self, session: Session, rows: Sequence[dict[str, Any]]) -> Any:
        """Run once per row (the driver's executemany)."""
        seen: dict[tuple[int, int], tuple[Any, Any]] = {}
        return session.connection().exec_driver_sql(self.sql, [self.values(r, seen) for r in rows])
