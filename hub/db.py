"""Database engine, sessions and Alembic migrations (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# A writer waits this long for SQLite's single write lock before giving up: long enough
# to ride out an ingest batch commit, short enough that a stuck request still fails.
SQLITE_BUSY_TIMEOUT_MS = 10_000
# PostgreSQL pool for one hub worker: API threads plus the ingest thread.
PG_POOL_SIZE = 10
PG_MAX_OVERFLOW = 10


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL (readers never block the writer), a busy timeout, and foreign keys enforced."""
    # Autocommit at the driver level so the "begin" hook below decides how to start.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# Execution option marking a transaction that only reads (see :func:`read_only`).
READ_ONLY_OPTION = "storewave_read_only"


def read_only(session: Session) -> None:
    """Start ``session``'s transaction as a reader: on SQLite no write lock, no gate.

    Call before the first statement; the transaction must not write (SQLite would then
    fail at once with SQLITE_BUSY rather than wait). No effect on PostgreSQL.
    """
    session.connection(execution_options={READ_ONLY_OPTION: True})


class SqliteWriterGate:
    """An in-process queue in front of SQLite's single write lock.

    Every transaction starts with ``BEGIN IMMEDIATE`` (a deferred transaction that reads
    and then writes fails at once with SQLITE_BUSY when another writer committed in
    between). SQLite's own busy handler only polls with growing sleeps, so under load a
    waiter can lose the race for many seconds; a lock here wakes waiters as soon as the
    holder ends, and the database lock is then free. Other processes still wait on
    ``busy_timeout``. Released on commit, rollback, or when the pool resets a connection.
    """

    _HELD = "storewave_writer_gate"

    def __init__(self) -> None:
        """One gate per engine (one database file)."""
        self._lock = threading.Lock()

    def begin(self, conn: Any) -> None:
        """Wait for the gate, then take SQLite's write lock (read-only: neither)."""
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            # WAL readers see a snapshot and never block or wait for the writer.
            conn.exec_driver_sql("BEGIN")
            return
        if not self._lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            raise OperationalError(
                "BEGIN IMMEDIATE", None, TimeoutError("database is locked (writer gate)")
            )
        conn.info[self._HELD] = True
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self.end(conn)
            raise

    def end(self, conn: Any, *_args: Any) -> None:
        """Open the gate if this connection holds it (idempotent)."""
        if conn.info.pop(self._HELD, False):
            self._lock.release()

    def _release_record(self, record: Any) -> None:
        """Pool-level release: a connection returned or dropped with its transaction open."""
        if record is not None and record.info.pop(self._HELD, False):
            self._lock.release()

    def on_reset(self, dbapi_connection: Any, connection_record: Any, reset_state: Any) -> None:
        """Pool ``reset`` event."""
        self._release_record(connection_record)

    def on_invalidate(self, dbapi_connection: Any, connection_record: Any, exception: Any) -> None:
        """Pool ``invalidate`` event."""
        self._release_record(connection_record)

    def on_close(self, dbapi_connection: Any, connection_record: Any) -> None:
        """Pool ``close`` event."""
        self._release_record(connection_record)

    def install(self, engine: Engine) -> None:
        """Hook the gate into ``engine``'s transaction and pool events."""
        event.listen(engine, "begin", self.begin)
        event.listen(engine, "commit", self.end)
        event.listen(engine, "rollback", self.end)
        event.listen(engine.pool, "reset", self.on_reset)
        event.listen(engine.pool, "invalidate", self.on_invalidate)
        event.listen(engine.pool, "close", self.on_close)


# With a background checkpointer, commits checkpoint only past this many WAL pages (a
# safety net, ~64 MB at 4 KiB pages, should the checkpointer stall); SQLite's default is
# 1,000 pages, run inside whichever commit crosses it (18-22 ms here: a check-in's p99).
SQLITE_SAFETY_CHECKPOINT_PAGES = 16_384
WAL_CHECKPOINT_INTERVAL_S = 1.0


class WalCheckpointer:
    """Runs SQLite's WAL checkpoint in a thread of its own, off every request's commit.

    In WAL mode each commit appends to the ``-wal`` file; by default the commit that takes
    it past 1,000 pages copies them into the database before returning, so one request in
    a few dozen pays for everyone's writes. This thread runs a PASSIVE checkpoint (it never
    blocks or waits for readers and writers) every ``interval_s``; commits keep SQLite's
    own checkpoint only as a safety net past :data:`SQLITE_SAFETY_CHECKPOINT_PAGES`.
    Durability is unchanged: ``synchronous=NORMAL`` in WAL mode keeps every commit across
    a process crash; an OS crash or power cut can lose the commits since the last
    checkpoint, which this thread makes at most about ``interval_s`` old.
    No effect on PostgreSQL or an in-memory SQLite database.
    """

    def __init__(self, engine: Engine, interval_s: float = WAL_CHECKPOINT_INTERVAL_S) -> None:
        """Bind ``engine``; :meth:`start` begins the thread."""
        self.engine = engine
        self.interval_s = interval_s
        self.runs = 0  # checkpoints run (tests and metrics read these)
        self.pages_copied = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        database = engine.url.database or ""
        self.enabled = engine.dialect.name == "sqlite" and database not in ("", ":memory:")
        if self.enabled:
            event.listen(engine, "connect", _safety_net_checkpoint)
            # Connections already pooled were opened with SQLite's default: reopen them.
            engine.dispose(close=True)

    def run_once(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (busy, WAL pages, pages copied) as SQLite reports them."""
        raw = self.engine.raw_connection()  # no transaction: the writer gate is not taken
        try:
            cursor = raw.cursor()
            busy, log_pages, copied = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            cursor.close()
        finally:
            raw.close()
        self.runs += 1
        self.pages_copied += max(0, copied)
        return busy, log_pages, copied

    def start(self) -> WalCheckpointer:
        """Start the thread (a no-op where there is no WAL file to keep short)."""
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="wal-checkpoint", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread after a last checkpoint."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(max(5.0, 2 * self.interval_s))
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._checkpoint_logged()
        self._checkpoint_logged()

    def _checkpoint_logged(self) -> None:
        try:
            self.run_once()
        except Exception:  # a locked or vanished file: the next round (or the net) copes
            log.exception("WAL checkpoint failed; will retry")


def _safety_net_checkpoint(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_SAFETY_CHECKPOINT_PAGES}")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An Engine for ``url``: SQLite with WAL/busy_timeout/foreign keys, or PostgreSQL."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        SqliteWriterGate().install(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(
        url, pool_size=PG_POOL_SIZE, max_overflow=PG_MAX_OVERFLOW, pool_pre_ping=True
    )


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic configuration pointing at ``hub/migrations`` (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the database to the newest revision of every branch (``upgrade heads``)."""
    command.upgrade(alembic_config(engine), "heads")
    log.info("database migrated", extra={"dialect": engine.dialect.name})


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


class DriverStatement:
    """A Core statement compiled once per database, run on the driver's own cursor.

    For the few statements every check-in and campaign evaluation runs: SQLAlchemy's
    per-execution work (cache key, compiled-cache lookup, execution context, result
    set-up) costs ~15 us a statement, more than SQLite takes to run a keyed insert, and ~8x
    what the driver call itself costs. Here the statement is compiled by SQLAlchemy once
    per dialect (the same SQL it would send), values go through the bind processors
    SQLAlchemy would apply (a time is stored exactly as the ORM stores it) and result
    columns (a SELECT's, or an INSERT/UPDATE's RETURNING) through its result processors; it
    runs on the DBAPI connection under ``connection``, so in the caller's transaction
    (SQLite: after the writer gate's ``BEGIN IMMEDIATE``). One code path for SQLite (qmark)
    and PostgreSQL (psycopg, named; psycopg prepares a statement run often server-side).
    Driver errors are raised as SQLAlchemy's (``OperationalError``, ``IntegrityError``...),
    and a lost connection is invalidated as SQLAlchemy would. The engine's
    ``before_cursor_execute``/``after_cursor_execute`` listeners still see each statement
    (with no execution context: ``context`` is None; a returned statement is not used;
    :meth:`run_many` is one statement with ``executemany`` True). A value the statement
    needs and the caller does not give is a ``KeyError``, never a silent NULL.
    """

    def __init__(self, statement: Any, column_keys: Sequence[str] | None = None) -> None:
        """``column_keys``: the columns an INSERT/UPDATE gets values for (as a dict)."""
        self.statement = statement
        self.column_keys = list(column_keys) if column_keys else None
        # A SELECT's columns; an INSERT/UPDATE's RETURNING columns (none without).
        selected = statement.exported_columns
        self.keys: tuple[str, ...] = tuple(selected.keys())
        self._types = [c.type for c in selected]
        self._compiled: dict[str, _DriverCompiled] = {}

    def _for(self, dialect: Any) -> _DriverCompiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = _DriverCompiled(self, dialect)
            self._compiled[dialect.name] = compiled
        return compiled

    def sql(self, dialect: Any) -> str:
        """The SQL text sent for ``dialect``."""
        return self._for(dialect).sql

    def execute(self, connection: Connection, params: dict[str, Any]) -> Any:
        """Run once; the driver's cursor (rows unprocessed: use :meth:`first`)."""
        compiled = self._for(connection.dialect)
        return _send(connection, compiled.sql, compiled.values(params), False)

    def run(self, connection: Connection, params: dict[str, Any]) -> int:
        """Run once, for its effect (an INSERT or UPDATE): the driver's row count."""
        cursor = self.execute(connection, params)
        rowcount: int = cursor.rowcount
        cursor.close()
        return rowcount

    def run_many(self, connection: Connection, rows: Sequence[dict[str, Any]]) -> int:
        """Run once per row, as one ``executemany``: the driver's row count (all rows').

        A value object shared by many rows (one evaluation's ``now``) is processed once.
        """
        compiled = self._for(connection.dialect)
        cursor = _send(connection, compiled.sql, compiled.values_many(rows), True)
        rowcount: int = cursor.rowcount
        cursor.close()
        return rowcount

    def first(self, connection: Connection, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first result row, its columns processed as SQLAlchemy would, or None."""
        compiled = self._for(connection.dialect)
        cursor = self.execute(connection, params)
        try:
            row = cursor.fetchone()
        except connection.dialect.loaded_dbapi.Error as exc:
            _raise_translated(connection, exc, compiled.sql, params, cursor)
        finally:
            cursor.close()
        return None if row is None else compiled.row(row)

    def one(self, connection: Connection, params: dict[str, Any]) -> tuple[Any, ...]:
        """The first result row, which there must be (a single-row SELECT, a RETURNING
        upsert), processed as :meth:`first`; no row is a ``LookupError``."""
        row = self.first(connection, params)
        if row is None:
            raise LookupError("the statement returned no row")
        return row

    def mapping(self, connection: Connection, params: dict[str, Any]) -> dict[str, Any] | None:
        """The first result row as ``{column key: value}``, or None."""
        row = self.first(connection, params)
        return None if row is None else dict(zip(self.keys, row, strict=True))


def _send(connection: Connection, sql: str, values: Any, many: bool) -> Any:
    """Run ``sql`` on a new cursor of ``connection``'s DBAPI connection (``executemany``
    if ``many``), telling the engine's cursor listeners; the cursor."""
    cursor = connection.connection.cursor()
    dispatch = connection.dispatch
    if dispatch.before_cursor_execute:
        for listener in dispatch.before_cursor_execute:
            listener(connection, cursor, sql, values, None, many)
    try:
        if many:
            cursor.executemany(sql, values)
        else:
            cursor.execute(sql, values)
    except connection.dialect.loaded_dbapi.Error as exc:
        _raise_translated(connection, exc, sql, values, cursor, many)
    if dispatch.after_cursor_execute:
        for listener in dispatch.after_cursor_execute:
            listener(connection, cursor, sql, values, None, many)
    return cursor


def run_all(
    connection: Connection, writes: Sequence[tuple[DriverStatement, dict[str, Any]]]
) -> None:
    """Run ``writes`` (INSERT/UPDATE driver statements) in order, in the caller's transaction.

    On PostgreSQL (psycopg) they go in one pipeline: one round trip to the server for all
    of them instead of one each (a check-in's 3-4 writes). A failing one fails the batch
    (its error raised as SQLAlchemy's, as :meth:`DriverStatement.run` would; the
    transaction is then aborted and must be rolled back, as after any failed statement).
    On SQLite (in-process, no round trips) one after the other.
    """
    pipeline = getattr(connection.connection.driver_connection, "pipeline", None)
    if pipeline is None or len(writes) < 2:
        for statement, params in writes:
            statement.run(connection, params)
        return
    dispatch = connection.dispatch
    sent = [
        (compiled.sql, compiled.values(params))
        for compiled, params in (
            (statement._for(connection.dialect), params) for statement, params in writes
        )
    ]
    cursor = connection.connection.cursor()
    try:
        if dispatch.before_cursor_execute:
            for sql, values in sent:
                for listener in dispatch.before_cursor_execute:
                    listener(connection, cursor, sql, values, None, False)
        try:
            with pipeline():
                for sql, values in sent:
                    cursor.execute(sql, values)
        except connection.dialect.loaded_dbapi.Error as exc:
            _raise_translated(
                connection, exc, ";\n".join(sql for sql, _ in sent), [v for _, v in sent], cursor
            )
        if dispatch.after_cursor_execute:
            for sql, values in sent:
                for listener in dispatch.after_cursor_execute:
                    listener(connection, cursor, sql, values, None, False)
    finally:
        cursor.close()


class _DriverCompiled:
    """One :class:`DriverStatement` compiled for one dialect."""

    def __init__(self, owner: DriverStatement, dialect: Any) -> None:
        compiled = owner.statement.compile(dialect=dialect, column_keys=owner.column_keys)
        # No Python-side column defaults to compute.
        assert not compiled.insert_prefetch and not compiled.update_prefetch
        self.sql: str = compiled.string
        self.positional = bool(compiled.positional)
        if self.positional:
            binds = [(name, compiled.binds[name]) for name in compiled.positiontup]
        else:  # each name once, as rendered in the SQL
            rendered = {name: bind for bind, name in compiled.bind_names.items()}
            binds = list(rendered.items())
        escaped = getattr(compiled, "escaped_bind_names", None) or {}
        # (the caller's key, the driver's key, bind processor, required, the literal's value)
        self.slots: list[tuple[str, str, Any, bool, Any]] = []
        for name, bind in binds:
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            default = None if bind.required else bind.effective_value
            self.slots.append((name, escaped.get(name, name), process, bind.required, default))
        self.results = [
            t.dialect_impl(dialect).result_processor(dialect, None) for t in owner._types
        ]
        self._processes_results = any(p is not None for p in self.results)

    def row(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """A driver row's columns processed as SQLAlchemy would."""
        if not self._processes_results:
            return tuple(row)
        return tuple(
            value if process is None or value is None else process(value)
            for process, value in zip(self.results, row, strict=True)
        )

    def values(
        self, params: dict[str, Any], seen: dict[tuple[int, int], tuple[Any, Any]] | None = None
    ) -> Any:
        """The driver's parameters for ``params`` (the statement's own literals filled in).

        ``seen``: processed values by (processor, input object), shared by the rows of one
        batch (they carry the same ``now`` object many times; a processed time costs ~2 us).
        Each entry keeps its input object alive, so an id is not reused while it is there.
        """
        out: list[Any] = []
        for name, _key, process, required, default in self.slots:
            if name in params:
                value = params[name]
            elif required:
                raise KeyError(f"no value for bind parameter {name!r}")
            else:
                value = default
            if process is not None and value is not None:
                if seen is None:
                    value = process(value)
                else:
                    hit = seen.get((id(process), id(value)))
                    if hit is None:
                        hit = seen[(id(process), id(value))] = (value, process(value))
                    value = hit[1]
            out.append(value)
        if self.positional:
            return tuple(out)
        return dict(zip((slot[1] for slot in self.slots), out, strict=True))

    def values_many(self, rows: Sequence[dict[str, Any]]) -> list[Any]:
        """The driver's parameters for each of ``rows`` (see :meth:`values`)."""
        seen: dict[tuple[int, int], tuple[Any, Any]] = {}
        return [self.values(params, seen) for params in rows]


def _raise_translated(
    connection: Connection, exc: Exception, sql: str, values: Any, cursor: Any, many: bool = False
) -> None:
    """Raise a driver error as SQLAlchemy's own, invalidating a lost connection first."""
    dialect = connection.dialect
    dbapi_connection = connection.connection.dbapi_connection
    lost = dialect.is_disconnect(exc, dbapi_connection, cursor)  # type: ignore[arg-type]
    if lost:
        connection.invalidate(exc)
    raise DBAPIError.instance(
        sql,
        values,
        exc,
        dialect.loaded_dbapi.Error,
        connection_invalidated=lost,
        dialect=dialect,
        ismulti=many,
    ) from exc
