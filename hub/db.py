"""Database engine, sessions and Alembic migrations (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
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
