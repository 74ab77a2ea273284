"""The node's on-disk outbox (SQLite, WAL): events live here from creation until the hub acks.

Each event is stored before anything is published. Its ``(boot, seq)`` is assigned when
it is first published, in the same transaction that stores the exact bytes sent, so a
re-send after a crash or outage is byte-identical and the hub's idempotent insert absorbs
it; shedding unsent rows under the size policy therefore never leaves a gap in ``seq``.

Size policy (stated in README): above ``soft_cap`` rows, the oldest unsent telemetry is
dropped first; detections and other events are never dropped below ``hard_cap``; at the
hard cap the oldest unsent detection goes (codes older than the hub's slot window would
be refused anyway), and every drop is counted, logged and reported in telemetry.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

log = logging.getLogger(__name__)

# Telemetry older than a day says nothing about the node's health now; shed it first.
TELEMETRY_TTL_S = 24 * 3600.0
# A node loses power, not just its process: FULL makes each committed event survive that.
_SYNCHRONOUS = "FULL"
# Another thread holding the write lock (never expected: one writer) would be waited on.
_BUSY_TIMEOUT_S = 5.0

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


def stamp(envelope: bytes, boot: int, seq: int) -> bytes:
    """The envelope's bytes with its ``boot`` and ``seq`` filled in (key order kept)."""
    data = json.loads(envelope)
    data["boot"] = boot
    data["seq"] = seq
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


class Outbox:
    """Durable FIFO of events; one writer (the agent thread)."""

    def __init__(self, path: str | Path, soft_cap: int, hard_cap: int) -> None:
        """Open (or create) the outbox at ``path`` and start a new boot."""
        if not 0 < soft_cap <= hard_cap:
            raise ValueError("need 0 < soft_cap <= hard_cap")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.soft_cap = soft_cap
        self.hard_cap = hard_cap
        self._db = sqlite3.connect(
            self.path, isolation_level=None, timeout=_BUSY_TIMEOUT_S, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={_SYNCHRONOUS}")
        self._db.executescript(_SCHEMA)
        self.boot = self._next_boot()
        self._next_seq = 0
        self._depth = int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        self.dropped_total = self._meta("dropped_total")
        self._cap_warned = False

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

    def add(self, envelope: bytes, kind: EventKind, leaf: str, now: float | None = None) -> int:
        """Store one unsequenced event durably (commit before return); return its row id."""
        created = time.time() if now is None else now
        self._db.execute("BEGIN IMMEDIATE")
        try:
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
            self._db.execute("ROLLBACK")
            raise
        self._depth += 1
        return int(cur.lastrowid or 0)

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

    def _count_dropped(self, count: int) -> None:
        """Add to the persisted drop counter (reported in telemetry as queue_dropped)."""
        self.dropped_total += count
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('dropped_total', ?)",
            (self.dropped_total,),
        )

    def sequence(self, limit: int) -> list[OutboxRow]:
        """Give the oldest ``limit`` unsent rows this boot's next seqs; return them in order."""
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
                self._db.execute(
                    "UPDATE outbox SET boot = ?, seq = ?, payload = ? WHERE id = ?",
                    (self.boot, self._next_seq, payload, rowid),
                )
                out.append(OutboxRow(rowid, leaf, self.boot, self._next_seq, payload))
                self._next_seq += 1
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
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
        """Delete every row of ``boot`` with seq <= ``seq`` (the hub committed them)."""
        cur = self._db.execute(
            "DELETE FROM outbox WHERE seq IS NOT NULL AND boot = ? AND seq <= ?", (boot, seq)
        )
        self._depth -= cur.rowcount
        return cur.rowcount

    def prune_telemetry(self, now: float | None = None) -> int:
        """Drop unsent telemetry older than TELEMETRY_TTL_S; return how many."""
        cutoff = (time.time() if now is None else now) - TELEMETRY_TTL_S
        cur = self._db.execute(
            "DELETE FROM outbox WHERE seq IS NULL AND kind = ? AND created < ?",
            (EventKind.TELEMETRY.value, cutoff),
        )
        if cur.rowcount:
            self._depth -= cur.rowcount
            self._count_dropped(cur.rowcount)
        return cur.rowcount

    def close(self) -> None:
        """Checkpoint and close the database."""
        self._db.close()
