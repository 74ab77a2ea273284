"""SQLite WAL checkpoints run in the checkpointer's thread, not inside requests' commits."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import Engine, text

from hub.db import SQLITE_SAFETY_CHECKPOINT_PAGES, WalCheckpointer, make_engine

PAGE = 4096
COMMITS = 1_500  # one ~4 KiB row each: past SQLite's default 1,000-page auto-checkpoint


def _engine(tmp_path: Path) -> tuple[Engine, Path]:
    path = tmp_path / "hub.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE blob (id INTEGER PRIMARY KEY, data BLOB)"))
    return engine, Path(f"{path}-wal")


def _write(engine: Engine, commits: int = COMMITS) -> None:
    for _ in range(commits):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO blob (data) VALUES (randomblob(3500))"))


def test_commits_checkpoint_by_themselves_without_it(tmp_path: Path) -> None:
    engine, wal = _engine(tmp_path)
    _write(engine)
    # SQLite's own checkpoint ran inside some commit and the log started over.
    assert wal.stat().st_size < 1_100 * PAGE
    engine.dispose()


def test_with_it_commits_leave_the_log_to_the_thread(tmp_path: Path) -> None:
    engine, wal = _engine(tmp_path)
    checkpointer = WalCheckpointer(engine)  # installed, thread not started
    with engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert pages == SQLITE_SAFETY_CHECKPOINT_PAGES
    _write(engine)
    assert wal.stat().st_size > COMMITS * PAGE  # no commit checkpointed
    busy, log_pages, copied = checkpointer.run_once()
    assert (busy, copied) == (0, log_pages) and log_pages > COMMITS
    engine.dispose()


def test_the_thread_keeps_the_log_short(tmp_path: Path) -> None:
    engine, _wal = _engine(tmp_path)
    checkpointer = WalCheckpointer(engine, interval_s=0.05).start()
    try:
        _write(engine, 300)
        deadline = time.monotonic() + 10
        while checkpointer.pages_copied < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpointer.pages_copied >= 300 and checkpointer.runs >= 1
    finally:
        checkpointer.stop()
    _busy, log_pages, copied = checkpointer.run_once()
    assert copied == log_pages  # everything written is in the database file
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM blob")).scalar() == 300
    engine.dispose()


def test_nothing_to_do_on_postgresql_or_in_memory(pg_url: str) -> None:
    for url in (pg_url, "sqlite://"):
        engine = make_engine(url)
        checkpointer = WalCheckpointer(engine).start()
        assert not checkpointer.enabled and checkpointer._thread is None
        checkpointer.stop()
        engine.dispose()


def test_an_app_with_its_own_engine_checkpoints_while_it_serves(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from hub.app import create_app
    from storewave.settings import HubSettings

    settings = HubSettings(
        data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'hub.sqlite3'}",
        secret_key="x" * 43,
    )
    app = create_app(settings)
    engine = app.state.hub.engine
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        with engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert pages == SQLITE_SAFETY_CHECKPOINT_PAGES
        assert any(t.name == "wal-checkpoint" for t in threading.enumerate())
    assert not any(t.name == "wal-checkpoint" for t in threading.enumerate())
    engine.dispose()
