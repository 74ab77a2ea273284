"""The ingest's database side (SQLite and PostgreSQL): store once, dead letters, cursors, gaps."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from hub.mqtt.hooks import NullHooks
from hub.mqtt.models import DeadLetter, MqttCursor, MqttEvent, MqttSeqGap
from hub.mqtt.publisher import detection_payload
from hub.mqtt.store import BatchWriter, Incoming
from storewave.wire import (
    MAX_PAYLOAD_BYTES,
    CodeKind,
    DetectionBody,
    DetectionEvent,
    NodeState,
    NodeStatus,
    TelemetryBody,
    TelemetryEvent,
    utc_now,
)

EVENTS = "sw/v1/nodes/{}/events"


def msg(node: str, seq: int, boot: int = 1, topic_node: str | None = None) -> Incoming:
    """A detection event for ``node`` on ``topic_node``'s events topic."""
    payload = detection_payload(node, boot, seq)
    return Incoming(EVENTS.format(topic_node or node), payload, utc_now())


def rows(engine: Engine, model: Any) -> list[Any]:
    with Session(engine) as session:
        return list(session.exec(select(model)).scalars())  # type: ignore[call-overload]


class RecordingHooks(NullHooks):
    """Knows only ``known`` nodes; records what was applied; fails on ``fail_seq``."""

    def __init__(self, known: set[str], fail_seq: int | None = None) -> None:
        self.known = known
        self.fail_seq = fail_seq
        self.applied: list[tuple[str, int, int]] = []
        self.statuses: list[tuple[str, NodeStatus]] = []

    def known_nodes(self, session: Session, node_ids: Iterable[str]) -> set[str]:
        return set(node_ids) & self.known

    def apply_event(self, session: Session, event: Any, received_at: datetime) -> None:
        if event.seq == self.fail_seq:
            raise RuntimeError("registry refused")
        self.applied.append((event.node, event.boot, event.seq))

    def apply_status(
        self, session: Session, node_id: str, status: NodeStatus, at: datetime
    ) -> None:
        self.statuses.append((node_id, status))


def test_each_event_stored_and_applied_once(engine: Engine) -> None:
    hooks = RecordingHooks({"node-a"})
    writer = BatchWriter(engine, hooks)
    first = writer.write([msg("node-a", 0), msg("node-a", 1), msg("node-a", 1)])
    assert (first.stored, first.duplicates) == (2, 1)
    assert first.acks == {("node-a", 1): 1}
    again = writer.write([msg("node-a", 0), msg("node-a", 1), msg("node-a", 2)])
    assert (again.stored, again.duplicates) == (1, 2)
    assert again.acks == {("node-a", 1): 2}
    assert hooks.applied == [("node-a", 1, 0), ("node-a", 1, 1), ("node-a", 1, 2)]
    assert sorted(e.seq for e in rows(engine, MqttEvent)) == [0, 1, 2]


def test_stored_row_reads_back_as_sent(engine: Engine) -> None:
    """The bulk JSON statement stores what the ORM would: times, ids, body, unicode."""
    from hub.mqtt.bulk import insert_events

    received = datetime(2026, 11, 29, 4, 5, 6, 789000, tzinfo=UTC)
    event = DetectionEvent(
        node="node-a", boot=3, seq=2**40, ts=datetime(2026, 11, 29, 4, 5, 6, 1000, tzinfo=UTC),
        body=DetectionBody(code="0123456789ab", kind=CodeKind.TOKEN, snr_db=-7.25,
                           confidence=1.0, first_heard=received, count=4),
    )
    BatchWriter(engine, NullHooks()).write(
        [Incoming(EVENTS.format("node-a"), event.to_bytes(), received)]
    )
    [row] = rows(engine, MqttEvent)
    assert (row.node, row.boot, row.seq, row.type) == ("node-a", 3, 2**40, "detection")
    assert row.event_id == str(event.id)
    assert row.ts.replace(tzinfo=UTC) == event.ts  # SQLite hands back naive UTC
    assert row.received_at.replace(tzinfo=UTC) == received
    assert row.body == event.body.model_dump(mode="json")
    with Session(engine) as session:  # a text value that needs JSON escaping survives
        row_in = {"node": "node-b", "boot": 0, "seq": 0, "event_id": "x", "type": "t",
                  "ts": received, "received_at": received, "body": {"detail": 'é "q" \\'}}
        assert insert_events(session, [row_in, row_in | {"seq": 1}]) == {
            ("node-b", 0, 0), ("node-b", 0, 1)}
        assert insert_events(session, [row_in]) == set()  # already there: not new
        session.commit()
    stored = [r.body for r in rows(engine, MqttEvent) if r.node == "node-b"]
    assert stored == [{"detail": 'é "q" \\'}] * 2


def test_cursor_upsert_never_moves_back(engine: Engine) -> None:
    from hub.mqtt.bulk import upsert_cursors

    at = utc_now()
    with Session(engine) as session:
        upsert_cursors(session, [{"node": "node-a", "boot": 1, "contiguous_seq": 5,
                                  "updated_at": at}])
        upsert_cursors(session, [{"node": "node-a", "boot": 1, "contiguous_seq": 3,
                                  "updated_at": at},
                                 {"node": "node-a", "boot": 2, "contiguous_seq": 0,
                                  "updated_at": at}])
        session.commit()
    stored = {(c.boot, c.contiguous_seq) for c in rows(engine, MqttCursor)}
    assert stored == {(1, 5), (2, 0)}


def test_a_fresh_writer_resumes_from_the_database(engine: Engine) -> None:
    BatchWriter(engine, NullHooks()).write([msg("node-a", s) for s in range(5)])
    restarted = BatchWriter(engine, NullHooks())  # a restarted hub: empty cache
    result = restarted.write([msg("node-a", 3), msg("node-a", 5)])
    assert (result.stored, result.duplicates) == (1, 1)
    assert result.acks == {("node-a", 1): 5}
    assert [c.contiguous_seq for c in rows(engine, MqttCursor)] == [5]


def test_gap_is_recorded_then_closed(engine: Engine) -> None:
    writer = BatchWriter(engine, NullHooks())
    result = writer.write([msg("node-a", 0), msg("node-a", 1), msg("node-a", 4)])
    assert result.acks == {("node-a", 1): 1}  # 2 and 3 missing: ack stops below them
    [gap] = rows(engine, MqttSeqGap)
    assert (gap.first_missing, gap.last_missing, gap.closed_at) == (2, 3, None)
    assert writer.write([msg("node-a", 5)]).gaps == []  # the same gap is not reported twice
    healed = writer.write([msg("node-a", 3), msg("node-a", 2)])
    assert healed.acks == {("node-a", 1): 5}
    [gap] = rows(engine, MqttSeqGap)
    assert gap.closed_at is not None


def test_boots_are_separate_sequences(engine: Engine) -> None:
    result = BatchWriter(engine, NullHooks()).write(
        [msg("node-a", 0, boot=1), msg("node-a", 0, boot=2), msg("node-a", 1, boot=2)]
    )
    assert result.stored == 3
    assert result.acks == {("node-a", 1): 0, ("node-a", 2): 1}


def _bad_messages() -> list[tuple[Incoming, str]]:
    now = utc_now()
    telemetry = TelemetryEvent(
        node="node-a", boot=1, seq=9, body=TelemetryBody(uptime_s=1, version="1")
    ).to_bytes()
    return [
        (Incoming(EVENTS.format("node-a"), b"{not json", now), "invalid envelope"),
        (Incoming(EVENTS.format("node-a"), b'{"v":1,"node":"node-a"}', now), "invalid envelope"),
        (msg("node-b", 0, topic_node="node-a"), "does not match topic node"),
        (msg("node-x", 0), "unknown node"),
        (Incoming("sw/v1/nodes/node-a/config", b"{}", now), "does not accept"),
        (Incoming("sw/v1/nodes/node-a/nope", b"{}", now), "unknown topic leaf"),
        (Incoming("sw/v1/nodes/node-a/events", telemetry, now), "not allowed on events"),
        (Incoming("sw/v1/nodes/node-a/telemetry", msg("node-a", 1).payload, now), "not allowed"),
        (Incoming("sw/v1/nodes/node-a/status", b'{"state":"gone","boot":1}', now), "NodeStatus"),
        (Incoming("sw/v1/nodes/node-a/events", b"x" * (MAX_PAYLOAD_BYTES + 1), now), "exceeds"),
        (Incoming("x" * 1000, b"{}", now), "not a node topic"),
    ]


@pytest.mark.parametrize("index", range(len(_bad_messages())))
def test_each_malformed_kind_is_dead_lettered(engine: Engine, index: int) -> None:
    bad, reason = _bad_messages()[index]
    hooks = RecordingHooks({"node-a", "node-b"})
    result = BatchWriter(engine, hooks).write([bad, msg("node-a", 0)])
    assert (result.dead, result.stored) == (1, 1)  # the good message is not held back
    [dead] = rows(engine, DeadLetter)
    assert reason in dead.reason
    assert len(dead.topic) <= 300 and dead.payload
    assert [e.node for e in rows(engine, MqttEvent)] == ["node-a"]


def test_identity_spoofing_is_refused(engine: Engine) -> None:
    """node-b's credentials can only publish on node-b's topic; claiming node-a is refused."""
    spoof = msg("node-a", 0, topic_node="node-b")
    result = BatchWriter(engine, RecordingHooks({"node-a", "node-b"})).write([spoof])
    assert result.dead == 1 and result.stored == 0
    [dead] = rows(engine, DeadLetter)
    assert dead.node == "node-b" and "does not match" in dead.reason


def test_failing_hook_isolates_one_message(engine: Engine) -> None:
    hooks = RecordingHooks({"node-a"}, fail_seq=1)
    result = BatchWriter(engine, hooks).write([msg("node-a", s) for s in range(3)])
    assert (result.stored, result.dead) == (3, 1)  # stored so the node's ack can advance
    assert result.acks[("node-a", 1)] == 2
    # seq 0 was applied twice: once in the batch attempt that was rolled back
    assert {s for _, _, s in hooks.applied} == {0, 2}
    [dead] = rows(engine, DeadLetter)
    assert "failed to apply" in dead.reason


def test_status_applied_and_cleared_status_ignored(engine: Engine) -> None:
    hooks = RecordingHooks({"node-a"})
    status = NodeStatus(state=NodeState.ONLINE, boot=3).to_bytes()
    result = BatchWriter(engine, hooks).write(
        [
            Incoming("sw/v1/nodes/node-a/status", status, utc_now(), retained=True),
            Incoming("sw/v1/nodes/node-a/status", b"", utc_now()),
        ]
    )
    assert (result.statuses, result.dead) == (1, 0)
    assert hooks.statuses == [("node-a", NodeStatus(state=NodeState.ONLINE, boot=3))]
