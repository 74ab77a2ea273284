"""Migrations produce exactly the models' schema, on SQLite and PostgreSQL; engine settings."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import make_url, text
from sqlmodel import Session, SQLModel

from hub.db import alembic_config, make_engine, migrate, read_only
from tests.hub.conftest import _admin_conninfo


def _with_ancestors(revisions: set[str]) -> set[str]:
    """``revisions`` and everything they build on (down revisions and ``depends_on``).

    Alembic drops a branch head from the version table once a revision that depends on
    it is applied, so "at heads" means every script head is here or below a current one.
    """
    script = ScriptDirectory.from_config(alembic_config())
    seen: set[str] = set()
    todo = list(revisions)
    while todo:
        rev = script.get_revision(todo.pop())
        if rev is None or rev.revision in seen:
            continue
        seen.add(rev.revision)
        for field in (rev.down_revision, rev.dependencies):
            if isinstance(field, str):
                todo.append(field)
            elif field:
                todo.extend(field)
    return seen


def _assert_no_diff(url: str) -> None:
    """Migrate an empty database and compare it with the models."""
    engine = make_engine(url)
    try:
        migrate(engine)
        migrate(engine)  # a second run is a no-op
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}),
                SQLModel.metadata,
            )
            heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
            current = set(MigrationContext.configure(conn).get_current_heads())
        assert diff == []
        assert heads <= _with_ancestors(current)
    finally:
        engine.dispose()


def test_migrations_match_models_sqlite(tmp_path: Path) -> None:
    """On SQLite, upgrade heads gives the models' schema."""
    _assert_no_diff(f"sqlite:///{tmp_path / 'm.sqlite3'}")


def test_migrations_match_models_postgresql(pg_url: str) -> None:
    """On PostgreSQL, upgrade heads gives the models' schema."""
    conninfo, _ = _admin_conninfo(pg_url)
    name = f"sw_hubapi_mig_{__import__('os').getpid()}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        _assert_no_diff(make_url(pg_url).set(database=name).render_as_string(hide_password=False))
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_core_branch_is_labelled() -> None:
    """The hub's revisions form branch ``core``, independent of ``ingest``."""
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_revision("core@head") is not None


def test_sqlite_engine_pragmas(tmp_path: Path) -> None:
    """SQLite runs in WAL with foreign keys on and a busy timeout."""
    engine = make_engine(f"sqlite:///{tmp_path / 'p.sqlite3'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() > 0
    engine.dispose()


def test_sqlite_writer_gate_serialises_and_recovers(tmp_path: Path) -> None:
    """Eight threads writing at once all succeed; a connection dropped mid-transaction
    (closed or invalidated) does not leave the gate shut."""
    engine = make_engine(f"sqlite:///{tmp_path / 'g.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    writes_per_thread = 50

    def writer() -> None:
        for _ in range(writes_per_thread):
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (1)"))

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for drop in ("close", "invalidate"):
        conn = engine.connect()
        conn.begin()
        conn.execute(text("INSERT INTO t VALUES (2)"))
        getattr(conn, drop)()
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM t WHERE x = 1")).scalar() == 8 * 50
        assert conn.execute(text("SELECT count(*) FROM t WHERE x = 2")).scalar() == 0
    engine.dispose()


def test_read_only_transaction_skips_the_writer_lock(tmp_path: Path) -> None:
    """While a writer holds SQLite's lock, a read_only session still reads at once."""
    engine = make_engine(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    writer = engine.connect()
    writer.begin()
    writer.execute(text("CREATE TABLE t (x INTEGER)"))
    done = threading.Event()

    def read() -> None:
        with Session(engine) as session:
            read_only(session)
            session.exec(text("SELECT 1")).one()  # type: ignore[call-overload]
            session.commit()
        done.set()

    reader = threading.Thread(target=read)
    reader.start()
    # Bounded wait: the gate would hold a gated reader for SQLITE_BUSY_TIMEOUT_MS.
    assert done.wait(timeout=5)
    writer.rollback()
    writer.close()
    reader.join(timeout=5)
    engine.dispose()
