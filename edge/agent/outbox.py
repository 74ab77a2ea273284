"""The node's on-disk outbox (SQLite, WAL): events live here from creation until the hub acks.

Each event is stored before anything is published. Its ``(boot, seq)`` is assigned when
it is first published, in the same transaction that stores the exact bytes sent, so a
re-send after a crash or outage is byte-identical and the hub's idempotent insert absorbs
it; shedding unsent rows under the size policy therefore never leaves a gap in ``seq``.

Size policy (stated in README): above ``soft_cap`` rows, the oldest unsent telemetry is
dropped first; detections and other events are never dropped below ``hard_cap``; at the
hard cap the oldest unsent detection goes (codes older than the hub's slot window would
be refused anyway), and every drop is counted, logged and reported in telemetry.

Disk full (SQLITE_FULL from a real ENOSPC) follows the same order and never stops the
node. The outbox keeps a small reserve file beside the database and gives it up the
moment the disk is full (deletes and checkpoints need a little room too), logs one error
for the episode, and sheds every unsent telemetry row. During the episode new telemetry
is refused outright, a new detection goes in only while there is room that acks will not
need (free pages in the file, or the reserve back), and a row with no room is refused,
counted as dropped and logged: the detections already queued are always kept. Sending
goes on in small transactions, so acks keep freeing room. A full disk never corrupts
the outbox (SQLite rolls the failed transaction back); once acks have made room, the
episode ends with a log line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)

# Telemetry older than a day says nothing about the node's health now; shed it first.
TELEMETRY_TTL_S = 24 * 3600.0
# A node loses power, not just its process: FULL makes each committed event survive that.
_SYNCHRONOUS = "FULL"
# Another thread holding the write lock (never expected: one writer) would be waited on.
_BUSY_TIMEOUT_S = 5.0
# Room kept back on the outbox's file system for the disk-full case: a delete (an ack,
# shedding telemetry) writes a few 4 KiB pages to the write-ahead log, and a checkpoint
# a few more; 128 KiB covers dozens of those on a disk with not one byte left.
RESERVE_BYTES = 128 * 1024
# While the disk is full, putting the reserve back is tried at most this often (each try
# writes the file, and it fails until something has freed room).
RESERVE_RETRY_S = 10.0
# After a checkpoint the write-ahead log is cut back to this size, so a burst does not
# keep disk space that the queue may need later.
_WAL_SIZE_LIMIT_BYTES = 512 * 1024
# Pages in the write-ahead log before SQLite checkpoints it (its default is 1,000, 4 MiB):
# on a small flash the log, not the queue, would otherwise be what fills the disk.
_WAL_AUTOCHECKPOINT_PAGES = 100

# Rows deleted (or sequenced) per transaction while the disk is full: a few pages each.
_ACK_CHUNK_ROWS = 64
_FULL_DISK_SEQUENCE_ROWS = 64
# On a full disk a new row goes in while the file has this much free space inside it
# (pages freed by shedding or acks): a few rows' worth, so one insert never grows it.
_FULL_DISK_FREE_PAGES_BYTES = 16 * 1024

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    leaf TEXT NOT NULL,
    created REAL NOT NULL,
    envelope BLOB NOT NULL,
    boot INTEGER,
    seq INTEGER,
    payload BLOB
);
CREATE INDEX IF NOT EXISTS outbox_sent ON outbox (boot, seq) WHERE seq IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (kind, id) WHERE seq IS NULL;
"""


class EventKind(StrEnum):
    """What the size policy knows about a row."""

    DETECTION = "detection"
    TELEMETRY = "telemetry"
    OTHER = "other"  # config rejections, self-tests, command results: kept like detections


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A sequenced event: the exact bytes to (re)publish and where."""

    rowid: int
    leaf: str
    boot: int
    seq: int
    payload: bytes


def _is_disk_full(exc: sqlite3.Error) -> bool:
    """Whether SQLite failed because the file system is full (SQLITE_FULL)."""
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or (
        "database or disk is full" in str(exc)
    )


def stamp(envelope: bytes, boot: int, seq: int) -> bytes:
    """The envelope's bytes with its ``boot`` and ``seq`` filled in (key order kept)."""
    data = json.loads(envelope)
    data["boot"] = boot
    data["seq"] = seq
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


class Outbox:
    """Durable FIFO of events; one writer (the agent thread)."""

    def __init__(
        self,
        path: str | Path,
        soft_cap: int,
        hard_cap: int,
        reserve_bytes: int = RESERVE_BYTES,
    ) -> None:
        """Open (or create) the outbox at ``path`` and start a new boot."""
        if not 0 < soft_cap <= hard_cap:
            raise ValueError("need 0 < soft_cap <= hard_cap")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.soft_cap = soft_cap
        self.hard_cap = hard_cap
        self.reserve_path = self.path.with_name(self.path.name + ".reserve")
        self.reserve_bytes = reserve_bytes
        # Disk-full episode: set by the first SQLITE_FULL, cleared when the reserve is back.
        self.disk_full = False
        self.disk_full_episodes = 0
        self._refusal_logged = False
        self._reserve_tried_at = 0.0
        self._dropped_unsaved = 0
        self._db = sqlite3.connect(
            self.path, isolation_level=None, timeout=_BUSY_TIMEOUT_S, check_same_thread=False
        )
        # Before the first table: freed pages can then go back to the file system.
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={_SYNCHRONOUS}")
        self._db.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT_BYTES}")
        self._db.execute(f"PRAGMA wal_autocheckpoint={_WAL_AUTOCHECKPOINT_PAGES}")
        self._when_full_retry(lambda: self._db.executescript(_SCHEMA))
        self.boot = self._when_full_retry(self._next_boot)
        self._next_seq = 0
        self._depth = int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        self.dropped_total = self._meta("dropped_total")
        self._cap_warned = False
        if not self.disk_full:
            self._make_reserve()

    def _meta(self, key: str) -> int:
        """An integer from the meta table (0 when absent)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _next_boot(self) -> int:
        """Increment and return the persisted boot counter (every start is a new boot)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            boot = self._meta("boot") + 1
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('boot', ?)", (boot,))
        return boot

    @property
    def depth(self) -> int:
        """Rows waiting for an ack (sent or not)."""
        return self._depth

    # ------------------------------------------------------------ disk full

    def _rollback(self) -> None:
        """Roll back the open transaction, if SQLite has not already (it does on SQLITE_FULL)."""
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _make_reserve(self) -> bool:
        """Put the reserve file in place (real blocks, not a sparse file); False: no room."""
        if self.reserve_bytes <= 0:
            return True
        try:
            with open(self.reserve_path, "wb") as f:
                try:
                    os.posix_fallocate(f.fileno(), 0, self.reserve_bytes)
                except (AttributeError, OSError) as exc:
                    if isinstance(exc, OSError) and exc.errno not in (None, 95):  # 95: EOPNOTSUPP
                        raise
                    f.write(b"\0" * self.reserve_bytes)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                self.reserve_path.unlink()
            return False
        return True

    def _free_bytes(self) -> int | None:
        """Bytes free on the outbox's file system (None when it cannot be read)."""
        try:
            return shutil.disk_usage(self.path.parent).free
        except OSError:
            return None

    def _enter_disk_full(self) -> None:
        """A write found the disk full: say so (once an episode), give up the reserve so the
        deletes and the checkpoint that make room can run, checkpoint."""
        if not self.disk_full:
            self.disk_full = True
            self.disk_full_episodes += 1
            self._refusal_logged = False
            log.error(
                "edge outbox: disk full; shedding unsent telemetry, keeping detections",
                extra={"path": str(self.path), "free_bytes": self._free_bytes()},
            )
        with contextlib.suppress(OSError):
            self.reserve_path.unlink()
        self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the write-ahead log into the database and restart it from its beginning.

        RESTART, not TRUNCATE: the log file keeps its blocks, so the next transactions
        (acks above all) overwrite them instead of needing new room on a full disk.
        """
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(RESTART)")

    def _compact(self) -> None:
        """Give freed pages back to the file system, checkpoint, and re-arm the reserve."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA incremental_vacuum").fetchall()
        self._checkpoint()
        if not self.reserve_path.exists():
            self._make_reserve()

    def _free_pages_bytes(self) -> int:
        """Room inside the database file: free pages a new row reuses without growing it."""
        try:
            pages = self._db.execute("PRAGMA freelist_count").fetchone()[0]
            size = self._db.execute("PRAGMA page_size").fetchone()[0]
        except sqlite3.Error:
            return 0
        return int(pages) * int(size)

    def _room_to_insert(self) -> bool:
        """Outside an episode always; inside one only while the reserve is (back) in place
        or the file has free pages to reuse (a row there does not grow the file): a new
        row must never take the room that acks and shedding need."""
        if not self.disk_full or self.reserve_bytes <= 0 or self.reserve_path.exists():
            return True
        return self._free_pages_bytes() >= _FULL_DISK_FREE_PAGES_BYTES

    def _maybe_leave_disk_full(self, force: bool = False) -> None:
        """After rows were freed: end the episode once there is room again (free pages in
        the file, or the reserve back; the latter is tried at most every RESERVE_RETRY_S)."""
        if not self.disk_full:
            return
        room = self._free_pages_bytes() >= self.reserve_bytes
        if not room:
            now = time.monotonic()
            if not force and now - self._reserve_tried_at < RESERVE_RETRY_S:
                return
            self._reserve_tried_at = now
            self._compact()
            room = self.reserve_path.exists()
        if room:
            self.disk_full = False
            self._try_save_dropped()
            log.warning(
                "edge outbox: disk space back; the queue takes every event again",
                extra={"path": str(self.path), "dropped_total": self.dropped_total},
            )

    def _when_full_retry(self, write: Callable[[], T]) -> T:
        """Run ``write``; on SQLITE_FULL, enter the disk-full episode and run it once more."""
        try:
            return write()
        except sqlite3.OperationalError as exc:
            self._rollback()
            if not _is_disk_full(exc):
                raise
        self._enter_disk_full()
        try:
            return write()
        finally:
            self._compact()

    def _shed_telemetry(self) -> int:
        """Delete every unsent telemetry row (disk full: detections matter more); rows gone."""
        try:
            cur = self._db.execute(
                "DELETE FROM outbox WHERE seq IS NULL AND kind = ?", (EventKind.TELEMETRY.value,)
            )
        except sqlite3.OperationalError as exc:
            if not _is_disk_full(exc):
                raise
            return 0
        shed = max(cur.rowcount, 0)
        if shed:
            self._depth -= shed
            self._count_dropped(shed, persist=False)
        return shed

    # ------------------------------------------------------------ events

    def add(self, envelope: bytes, kind: EventKind, leaf: str, now: float | None = None) -> int:
        """Store one unsequenced event durably (commit before return); return its row id.

        0 means the event was refused (counted in ``dropped_total``): telemetry when the
        queue is full of detections, or, on a full disk, an event there is no room for
        once the unsent telemetry is gone (see the module docstring). A full disk never
        raises here.
        """
        created = time.time() if now is None else now
        if self.disk_full and kind is EventKind.TELEMETRY:
            # The room left is for detections; the drop shows in the next heartbeat
            # that does fit (queue_dropped).
            self._count_dropped(1, persist=False)
            return 0
        shed_once = False
        while True:
            if self._room_to_insert():
                try:
                    rowid = self._insert(envelope, kind, leaf, created)
                except sqlite3.OperationalError as exc:
                    self._rollback()
                    if not _is_disk_full(exc):
                        raise
                else:
                    if rowid:
                        self._depth += 1
                    if self.disk_full:
                        self._checkpoint()  # keep the log from taking the queue's room
                    return rowid
                self._enter_disk_full()
            if not shed_once:
                shed_once = True
                self._shed_telemetry()
                self._compact()
                continue
            self._count_dropped(1, persist=False)
            if not self._refusal_logged:  # once an episode; the count says the rest
                self._refusal_logged = True
                log.error(
                    "edge outbox: disk full; new events are refused until acks make room",
                    extra={"kind": kind.value, "dropped_total": self.dropped_total},
                )
            return 0

    def _insert(self, envelope: bytes, kind: EventKind, leaf: str, created: float) -> int:
        """One transaction: size policy, then the row (0: refused by the policy)."""
        counters = (self.dropped_total, self._dropped_unsaved)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._save_dropped()
            if not self._make_room(kind):
                self._count_dropped(1)
                self._db.execute("COMMIT")
                return 0
            cur = self._db.execute(
                "INSERT INTO outbox (kind, leaf, created, envelope) VALUES (?, ?, ?, ?)",
                (kind.value, leaf, created, envelope),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            self.dropped_total, self._dropped_unsaved = counters
            self._depth_from_db()
            raise
        return int(cur.lastrowid or 0)

    def _depth_from_db(self) -> None:
        """Recount after a rolled-back transaction (the size policy may have shed rows)."""
        with contextlib.suppress(sqlite3.Error):
            self._depth = int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def _drop_oldest(self, kinds: tuple[EventKind, ...]) -> int:
        """Delete the oldest unsent row of ``kinds`` (inside a transaction); rows deleted."""
        marks = ",".join("?" for _ in kinds)
        cur = self._db.execute(
            f"DELETE FROM outbox WHERE id = (SELECT id FROM outbox WHERE seq IS NULL "
            f"AND kind IN ({marks}) ORDER BY id LIMIT 1)",
            tuple(k.value for k in kinds),
        )
        return cur.rowcount

    def _make_room(self, incoming: EventKind) -> bool:
        """Apply the size policy before one more row goes in; False: refuse the new row."""
        if self._depth < self.soft_cap:
            return True
        dropped = self._drop_oldest((EventKind.TELEMETRY,))
        if not dropped and self._depth >= self.hard_cap:
            if incoming is EventKind.TELEMETRY:
                return False  # full of detections: a heartbeat is the thing to lose
            dropped = self._drop_oldest((EventKind.DETECTION, EventKind.OTHER))
            if dropped and not self._cap_warned:
                log.error(
                    "outbox at its hard cap: dropping the oldest detections",
                    extra={"hard_cap": self.hard_cap},
                )
                self._cap_warned = True
        if dropped:
            self._depth -= dropped
            self._count_dropped(dropped)
        return True

    def _count_dropped(self, count: int, persist: bool = True) -> None:
        """Add to the drop counter (reported in telemetry as queue_dropped); ``persist``
        writes it in the current transaction, else with the next successful one."""
        self.dropped_total += count
        if not persist:
            self._dropped_unsaved += count
            return
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('dropped_total', ?)",
            (self.dropped_total,),
        )
        self._dropped_unsaved = 0

    def _save_dropped(self) -> None:
        """Persist drops counted while the disk had no room for the counter (raises on a
        full disk: inside a transaction that failure must roll it back)."""
        if self._dropped_unsaved:
            self._count_dropped(0)

    def _try_save_dropped(self) -> None:
        """``_save_dropped`` outside a transaction, where a full disk only means 'later'."""
        with contextlib.suppress(sqlite3.OperationalError):
            self._save_dropped()

    def sequence(self, limit: int) -> list[OutboxRow]:
        """Give the oldest ``limit`` unsent rows this boot's next seqs; return them in order.

        On a full disk this is done a few rows per transaction (checkpointing between),
        and may return fewer rows, or none, when even that finds no room; the rest stay
        unsent for a later call.
        """
        if not self.disk_full:
            try:
                return self._sequence(limit)
            except sqlite3.OperationalError as exc:
                self._rollback()
                if not _is_disk_full(exc):
                    raise
            self._enter_disk_full()
            self._shed_telemetry()
        out: list[OutboxRow] = []
        while len(out) < limit:
            chunk = self._sequence_chunk(min(limit - len(out), _FULL_DISK_SEQUENCE_ROWS))
            if not chunk:
                break
            out += chunk
        self._compact()
        return out

    def _sequence_chunk(self, limit: int) -> list[OutboxRow]:
        """Disk-full sequencing: one small transaction, and one retry after giving up the
        reserve (sequencing rewrites rows in place; it must go on, or nothing is ever
        sent, acked and freed)."""
        for attempt in range(2):
            try:
                rows = self._sequence(limit)
            except sqlite3.OperationalError as exc:
                self._rollback()
                if not _is_disk_full(exc):
                    raise
                if attempt == 0:
                    self._enter_disk_full()
                continue
            self._checkpoint()
            return rows
        return []

    def _sequence(self, limit: int) -> list[OutboxRow]:
        """One transaction stamping ``limit`` rows (rolled back whole on failure)."""
        rows = self._db.execute(
            "SELECT id, leaf, envelope FROM outbox WHERE seq IS NULL ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        if not rows:
            return []
        out: list[OutboxRow] = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for rowid, leaf, envelope in rows:
                payload = stamp(envelope, self.boot, self._next_seq)
                # The envelope is not needed once the exact bytes are kept: swapping one
                # for the other keeps the row's size, so a full disk can still sequence.
                self._db.execute(
                    "UPDATE outbox SET boot = ?, seq = ?, payload = ?, envelope = x'' "
                    "WHERE id = ?",
                    (self.boot, self._next_seq, payload, rowid),
                )
                out.append(OutboxRow(rowid, leaf, self.boot, self._next_seq, payload))
                self._next_seq += 1
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            self._next_seq -= len(out)
            raise
        return out

    def in_flight(self) -> list[OutboxRow]:
        """Every sequenced row not yet acked, by (boot, seq): what a restart must resend."""
        rows = self._db.execute(
            "SELECT id, leaf, boot, seq, payload FROM outbox WHERE seq IS NOT NULL "
            "ORDER BY boot, seq"
        ).fetchall()
        return [OutboxRow(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def unsent(self) -> int:
        """Rows never published yet."""
        return int(self._db.execute("SELECT count(*) FROM outbox WHERE seq IS NULL").fetchone()[0])

    def ack(self, boot: int, seq: int) -> int:
        """Delete every row of ``boot`` with seq <= ``seq`` (the hub committed them).

        On a full disk a large delete may not fit in the write-ahead log: it is then done
        in small chunks, checkpointing between them. Rows that still cannot be deleted
        stay (the hub has them; a later ack of the same boot covers them again).
        """

        def delete() -> int:
            cur = self._db.execute(
                "DELETE FROM outbox WHERE seq IS NOT NULL AND boot = ? AND seq <= ?", (boot, seq)
            )
            return cur.rowcount

        try:
            freed = self._when_full_retry(delete)
        except sqlite3.OperationalError as exc:
            if not _is_disk_full(exc):
                raise
            freed = self._ack_in_chunks(boot, seq)
        self._depth -= freed
        if freed:
            self._maybe_leave_disk_full(force=self._depth == 0)
        return freed

    def _ack_in_chunks(self, boot: int, seq: int) -> int:
        """The disk-full form of ``ack``: a few rows per transaction; rows deleted."""
        freed, chunk = 0, _ACK_CHUNK_ROWS
        while chunk:
            try:
                cur = self._db.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE seq IS NOT NULL "
                    "AND boot = ? AND seq <= ? ORDER BY seq LIMIT ?)",
                    (boot, seq, chunk),
                )
            except sqlite3.OperationalError as exc:
                if not _is_disk_full(exc):
                    raise
                self._checkpoint()
                chunk //= 2
                continue
            if cur.rowcount <= 0:
                break
            freed += cur.rowcount
            self._checkpoint()
        self._compact()
        return freed

    def prune_telemetry(self, now: float | None = None) -> int:
        """Drop unsent telemetry older than TELEMETRY_TTL_S; return how many."""
        cutoff = (time.time() if now is None else now) - TELEMETRY_TTL_S

        def prune() -> int:
            cur = self._db.execute(
                "DELETE FROM outbox WHERE seq IS NULL AND kind = ? AND created < ?",
                (EventKind.TELEMETRY.value, cutoff),
            )
            return cur.rowcount

        try:
            pruned = self._when_full_retry(prune)
        except sqlite3.OperationalError as exc:
            if not _is_disk_full(exc):
                raise
            return 0
        if pruned:
            self._depth -= pruned
            self._count_dropped(pruned, persist=False)
            self._try_save_dropped()
        return pruned

    def close(self) -> None:
        """Checkpoint and close the database."""
        self._db.close()
