"""Golden bytes and refusals of the shared wire schema."""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storewave import wire
from storewave.wire import (
    Ack,
    DetectionBody,
    DetectionEvent,
    NodeStatus,
    TelemetryBody,
    TelemetryEvent,
    WireError,
    node_topic,
    parse_event,
    parse_message,
    parse_node_topic,
)

FIXED_ID = uuid.UUID("0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b")
FIXED_TS = datetime(2026, 11, 29, 1, 24, 41, 123000, tzinfo=UTC)


def _detection() -> DetectionEvent:
    return DetectionEvent(
        id=FIXED_ID,
        node="store-0001-n1",
        boot=3,
        seq=42,
        ts=FIXED_TS,
        body=DetectionBody(
            code="0424b47d8b5a",
            kind="beacon",
            snr_db=12.5,
            confidence=0.97,
            first_heard=FIXED_TS,
            count=2,
        ),
    )


def test_detection_golden_bytes() -> None:
    assert _detection().to_bytes() == (
        b'{"v":1,"id":"0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b","node":"store-0001-n1",'
        b'"boot":3,"seq":42,"ts":"2026-11-29T01:24:41.123Z","type":"detection",'
        b'"body":{"code":"0424b47d8b5a","kind":"beacon","snr_db":12.5,"confidence":0.97,'
        b'"first_heard":"2026-11-29T01:24:41.123Z","count":2}}'
    )


def test_status_and_ack_golden_bytes() -> None:
    assert NodeStatus(state="online", boot=7).to_bytes() == b'{"state":"online","boot":7}'
    assert NodeStatus(state="lost", boot=7).to_bytes() == b'{"state":"lost","boot":7}'
    assert Ack(boot=7, seq=1041).to_bytes() == b'{"boot":7,"seq":1041}'


def test_round_trip_through_parse_event() -> None:
    event = _detection()
    parsed = parse_event(event.to_bytes(), topic_node="store-0001-n1")
    assert parsed == event
    telemetry = TelemetryEvent(
        node="store-0001-n1", boot=1, seq=0, body=TelemetryBody(uptime_s=3.5, version="0.1.0")
    )
    assert parse_event(telemetry.to_bytes()).type == "telemetry"


def test_new_envelopes_get_uuid7_and_utc_ms() -> None:
    event = TelemetryEvent(node="abc", boot=0, seq=0, body=TelemetryBody(uptime_s=0, version="x"))
    assert event.id.version == 7
    assert json.loads(event.to_bytes())["ts"].endswith("Z")


def test_uuid7_is_time_ordered() -> None:
    ids = [wire.uuid7(unix_ms=ms) for ms in (1, 2, 1000, 2**40)]
    assert ids == sorted(ids)
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "invalid envelope"),
        (b"not json", "invalid envelope"),
        (b"[]", "invalid envelope"),
        (b'{"v":2}', "invalid envelope"),
        (b"x" * (wire.MAX_PAYLOAD_BYTES + 1), "exceeds"),
    ],
)
def test_malformed_payloads_raise_wire_error(payload: bytes, reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        parse_event(payload)


def test_envelope_field_errors_name_the_field() -> None:
    doc = json.loads(_detection().to_bytes())
    doc["body"]["code"] = "zz"
    with pytest.raises(WireError, match="body"):
        parse_event(json.dumps(doc).encode())
    doc = json.loads(_detection().to_bytes())
    doc["extra"] = 1
    with pytest.raises(WireError, match="extra"):
        parse_event(json.dumps(doc).encode())
    doc = json.loads(_detection().to_bytes())
    doc["ts"] = "2026-11-29T01:24:41"  # naive: no timezone
    with pytest.raises(WireError, match="timezone"):
        parse_event(json.dumps(doc).encode())


def test_identity_must_match_topic() -> None:
    with pytest.raises(WireError, match="does not match topic"):
        parse_event(_detection().to_bytes(), topic_node="store-0002-n1")


def test_topics() -> None:
    assert node_topic("store-0001-n1", "events") == "sw/v1/nodes/store-0001-n1/events"
    assert parse_node_topic("sw/v1/nodes/store-0001-n1/ack") == ("store-0001-n1", wire.NodeLeaf.ACK)
    for bad in ("sw/v1/nodes/+/events", "sw/v1/nodes/a/b/events", "sw/v2/nodes/abc/events",
                "sw/v1/nodes/abc/secrets"):
        with pytest.raises(WireError):
            parse_node_topic(bad)
    for bad_id in ("#", "a/b", "AB", "x"):
        with pytest.raises(WireError):
            node_topic(bad_id, "events")


def test_parse_message_refuses_bad_ack() -> None:
    with pytest.raises(WireError, match="Ack"):
        parse_message(Ack, b'{"boot":-1,"seq":3}')
    assert parse_message(Ack, b'{"boot":1,"seq":-1}') == Ack(boot=1, seq=-1)


@given(st.binary(max_size=512))
def test_random_bytes_never_escape_as_other_errors(payload: bytes) -> None:
    with contextlib.suppress(WireError):
        parse_event(payload)
