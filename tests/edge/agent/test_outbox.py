"""The SQLite outbox: durability, boot, sequencing at first publish, size policy, disk full."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.agent.outbox import RESERVE_BYTES, TELEMETRY_TTL_S, EventKind, Outbox, stamp
from storewave.wire import DetectionBody, DetectionEvent, parse_event, utc_now
from tests.e2e.faults import tiny_filesystem


def _event(code: str = "8000005a0001") -> bytes:
    body = DetectionBody(
        code=code, kind="token", snr_db=12.5, confidence=0.9, first_heard=utc_now(), count=1
    )
    return DetectionEvent(node="store-0001-n1", boot=0, seq=0, body=body).to_bytes()


def test_stamp_gives_the_bytes_the_model_would() -> None:
    raw = _event()
    event = parse_event(raw)
    assert stamp(raw, 7, 42) == event.model_copy(update={"boot": 7, "seq": 42}).to_bytes()


def test_boot_counter_grows_on_every_open(tmp_path: Path) -> None:
    boots = []
    for _ in range(3):
        box = Outbox(tmp_path / "o.sqlite3", 10, 20)
        boots.append(box.boot)
        box.close()
    assert boots == [1, 2, 3]


def test_rows_are_sequenced_in_order_and_freed_only_by_a_covering_ack(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", 100, 200)
    for i in range(5):
        box.add(_event(f"8000005a000{i}"), EventKind.DETECTION, "events")
    rows = box.sequence(3)
    assert [(r.boot, r.seq) for r in rows] == [(1, 0), (1, 1), (1, 2)]
    assert [parse_event(r.payload).body.code for r in rows] == [
        "8000005a0000",
        "8000005a0001",
        "8000005a0002",
    ]
    assert box.ack(0, 10) == 0  # another boot's ack frees nothing
    assert box.ack(1, 1) == 2
    assert box.depth == 3
    assert [(r.boot, r.seq) for r in box.in_flight()] == [(1, 2)]


def test_sequenced_rows_survive_a_restart_with_their_boot_and_seq(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", 100, 200)
    box.add(_event(), EventKind.DETECTION, "events")
    box.add(_event("8000005a0009"), EventKind.DETECTION, "events")
    sent = box.sequence(1)
    box.close()  # as after kill -9: nothing else happens
    again = Outbox(tmp_path / "o.sqlite3", 100, 200)
    assert again.boot == 2
    assert again.in_flight() == sent  # resent byte for byte under boot 1
    fresh = again.sequence(10)
    assert [(r.boot, r.seq) for r in fresh] == [(2, 0)]


def test_above_the_soft_cap_the_oldest_telemetry_goes_first(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", soft_cap=4, hard_cap=6)
    box.add(b'{"t":0}', EventKind.TELEMETRY, "telemetry")
    box.add(_event(), EventKind.DETECTION, "events")
    box.add(b'{"t":1}', EventKind.TELEMETRY, "telemetry")
    box.add(_event(), EventKind.DETECTION, "events")
    box.add(_event(), EventKind.DETECTION, "events")  # at soft cap: telemetry 0 dropped
    box.add(_event(), EventKind.DETECTION, "events")  # telemetry 1 dropped
    kinds = [k for (k,) in box._db.execute("SELECT kind FROM outbox ORDER BY id")]
    assert kinds == ["detection"] * 4
    assert box.dropped_total == 2


def test_detections_are_kept_until_the_hard_cap_then_the_oldest_goes(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", soft_cap=2, hard_cap=3)
    ids = [box.add(_event(), EventKind.DETECTION, "events") for _ in range(3)]
    assert box.depth == 3 and box.dropped_total == 0
    box.add(_event(), EventKind.DETECTION, "events")
    remaining = [i for (i,) in box._db.execute("SELECT id FROM outbox ORDER BY id")]
    assert ids[0] not in remaining and len(remaining) == 3
    assert box.dropped_total == 1
    box.close()
    assert Outbox(tmp_path / "o.sqlite3", 2, 3).dropped_total == 1  # persisted for telemetry


def test_sent_rows_are_never_shed(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", soft_cap=1, hard_cap=2)
    box.add(_event(), EventKind.DETECTION, "events")
    box.add(_event(), EventKind.DETECTION, "events")
    sent = box.sequence(2)
    box.add(_event(), EventKind.DETECTION, "events")  # nothing unsent to shed: kept
    assert box.in_flight() == sent and box.depth == 3


def test_old_telemetry_expires(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", 10, 20)
    box.add(b'{"t":0}', EventKind.TELEMETRY, "telemetry", now=1000.0)
    box.add(_event(), EventKind.DETECTION, "events", now=1000.0)
    assert box.prune_telemetry(now=1000.0 + TELEMETRY_TTL_S + 1) == 1
    assert box.depth == 1


def test_bad_caps_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="soft_cap"):
        Outbox(tmp_path / "o.sqlite3", 10, 5)


def test_at_the_hard_cap_full_of_detections_new_telemetry_is_refused(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", soft_cap=1, hard_cap=2)
    box.add(_event(), EventKind.DETECTION, "events")
    box.add(_event(), EventKind.DETECTION, "events")
    assert box.add(b'{"t":0}', EventKind.TELEMETRY, "telemetry") == 0
    kinds = [k for (k,) in box._db.execute("SELECT kind FROM outbox")]
    assert kinds == ["detection", "detection"] and box.dropped_total == 1


def test_a_sequenced_row_keeps_only_the_bytes_it_sends(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", 10, 20)
    box.add(_event(), EventKind.DETECTION, "events")
    (row,) = box.sequence(1)
    envelope, payload = box._db.execute("SELECT envelope, payload FROM outbox").fetchone()
    assert envelope == b"" and payload == row.payload  # same size: a full disk can sequence


# A file system this small fills after about a thousand events.
TINY_FS_BYTES = 1024 * 1024
_HEARTBEAT = b'{"v":1,"type":"telemetry","body":{"uptime_s":1.0,"version":"0.1.0"}}'


@pytest.fixture
def tiny_dir() -> Iterator[Path]:
    """A real 1 MiB file system (tmpfs): past it, writes fail with ENOSPC."""
    with tiny_filesystem(TINY_FS_BYTES) as path:
        yield path


def _fill_until_disk_full(box: Outbox, telemetry_every: int) -> tuple[int, int]:
    """Add events (one heartbeat in ``telemetry_every``) until the disk is full; return
    how many of each went in before it was."""
    detections = telemetry = 0
    while not box.disk_full:
        if telemetry_every and (detections + telemetry) % telemetry_every == 0:
            telemetry += box.add(_HEARTBEAT, EventKind.TELEMETRY, "telemetry") > 0
        else:
            event = _event(f"8000{detections:08x}")
            detections += box.add(event, EventKind.DETECTION, "events") > 0
        assert detections + telemetry < 100_000, "the disk never filled"
    return detections, telemetry


def _kinds(box: Outbox) -> dict[str, int]:
    return dict(box._db.execute("SELECT kind, count(*) FROM outbox GROUP BY kind").fetchall())


def test_disk_full_sheds_telemetry_and_keeps_every_detection(
    tiny_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(tiny_dir / "o.sqlite3", soft_cap=100_000, hard_cap=200_000)
    assert box.reserve_path.stat().st_size == RESERVE_BYTES
    with caplog.at_level(logging.ERROR, logger="edge.agent.outbox"):
        detections, telemetry = _fill_until_disk_full(box, telemetry_every=4)
        more = 0  # detections that fit in the room the shed heartbeats left
        while box.add(_event(f"9000{more:08x}"), EventKind.DETECTION, "events"):
            more += 1
            assert more < 10_000
    assert more > 0
    assert "disk full; shedding unsent telemetry" in caplog.text  # a clear error, once
    assert box.disk_full and box.disk_full_episodes == 1
    assert _kinds(box) == {"detection": detections + more}  # every detection kept
    assert box.dropped_total == telemetry + 1 and box.depth == detections + more
    assert box._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    # The queue still drains on the full disk (in small transactions, a whole window
    # per call), every detection sent once, and the episode ends when acks make room.
    sent: list[str] = []
    for _ in range(10):
        rows = box.sequence(1000)
        if not rows:
            break
        assert len(rows) == min(1000, detections + more - len(sent))
        sent += [parse_event(r.payload).body.code for r in rows]
        assert box.ack(box.boot, rows[-1].seq) == len(rows)
    assert len(sent) == len(set(sent)) == detections + more and box.depth == 0
    assert not box.disk_full  # room again: the queue takes every event
    assert box.add(_HEARTBEAT, EventKind.TELEMETRY, "telemetry") > 0
    box.close()
    again = Outbox(tiny_dir / "o.sqlite3", soft_cap=100_000, hard_cap=200_000)
    assert again.depth == 1 and again.dropped_total == telemetry + 1  # the count survived
    assert again._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_disk_full_of_detections_keeps_them_and_refuses_what_has_no_room(
    tiny_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(tiny_dir / "o.sqlite3", soft_cap=100_000, hard_cap=200_000)
    with caplog.at_level(logging.ERROR, logger="edge.agent.outbox"):
        _fill_until_disk_full(box, telemetry_every=0)
        kept = dict(_kinds(box))
        refused = [box.add(_event(f"9000{i:08x}"), EventKind.DETECTION, "events")
                   for i in range(50)]
        refused.append(box.add(_HEARTBEAT, EventKind.TELEMETRY, "telemetry"))
    assert set(refused) == {0}  # no room: refused, and nothing already queued was lost
    assert _kinds(box) == kept and box.depth == kept["detection"]
    # Every refusal counted (queue_dropped in telemetry): these 51 and the one that
    # found the disk full.
    assert box.dropped_total == 52
    assert caplog.text.count("new events are refused until acks make room") == 1
    assert box._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    # Acks make room again, even with not a byte free (the reserve is given up for them).
    for _ in range(20):
        rows = box.sequence(1000)
        assert rows and box.ack(box.boot, rows[-1].seq) == len(rows)
        if not box.disk_full:
            break
    assert not box.disk_full
    assert box.add(_event("a00000000001"), EventKind.DETECTION, "events") > 0
