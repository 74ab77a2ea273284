"""The SQLite outbox: durability, boot counter, sequencing at first publish, size policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.agent.outbox import TELEMETRY_TTL_S, EventKind, Outbox, stamp
from storewave.wire import DetectionBody, DetectionEvent, parse_event, utc_now


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
