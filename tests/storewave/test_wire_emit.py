"""EmitSchedule's turn in the store's cycle: ``offset_s`` on the wire, backward compatible."""

from __future__ import annotations

import pytest

from edge.modem.frame import FRAME_DURATION_S
from storewave.wire import (
    EMIT_SLOT_S,
    MAX_EMIT_SLOTS,
    EmitSchedule,
    NodeConfig,
    WireError,
    parse_message,
)


def test_offset_zero_stays_off_the_wire_and_old_configs_parse() -> None:
    """A node built before offset_s refuses unknown fields: a 0 offset is not sent."""
    assert EmitSchedule().to_bytes() == b'{"enabled":true,"level_dbfs":-12.0,"period_s":1.0}'
    old = b'{"version":3,"emit":{"enabled":true,"level_dbfs":-20.0,"period_s":1.0}}'
    config = parse_message(NodeConfig, old)
    assert config.emit.offset_s == 0.0


def test_offset_travels_and_round_trips() -> None:
    emit = EmitSchedule(level_dbfs=-30.0, period_s=1.1, offset_s=0.55)
    assert emit.to_bytes() == (
        b'{"enabled":true,"level_dbfs":-30.0,"period_s":1.1,"offset_s":0.55}'
    )
    assert EmitSchedule.model_validate_json(emit.to_bytes()) == emit


@pytest.mark.parametrize("offset", [-0.1, 1.0, 2.0])
def test_offset_outside_the_period_is_refused(offset: float) -> None:
    payload = f'{{"version":1,"emit":{{"period_s":1.0,"offset_s":{offset}}}}}'.encode()
    with pytest.raises(WireError):
        parse_message(NodeConfig, payload)


def test_next_start_is_on_the_wall_clock_grid() -> None:
    emit = EmitSchedule(period_s=1.1, offset_s=0.55)
    start = emit.next_start(1_790_000_000.3)
    assert start >= 1_790_000_000.3 and start - 1_790_000_000.3 < 1.1
    assert (start - 0.55) / 1.1 == pytest.approx(round((start - 0.55) / 1.1), abs=1e-6)
    assert emit.next_start(start) == start  # a start is its own next start


def test_a_slot_holds_a_frame() -> None:
    assert EMIT_SLOT_S > FRAME_DURATION_S


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 20])
def test_time_shared_turns_never_overlap(count: int) -> None:
    turns = [EmitSchedule.time_shared(i, count, level_dbfs=-20.0) for i in range(count)]
    assert len({t.period_s for t in turns}) == 1
    period = turns[0].period_s
    assert period == max(1.0, round(count * EMIT_SLOT_S, 6))
    offsets = sorted(t.offset_s for t in turns)
    gaps = [b - a for a, b in zip(offsets, offsets[1:], strict=False)]
    gaps.append(period - offsets[-1] + offsets[0])  # around the cycle
    assert min(gaps) >= EMIT_SLOT_S - 1e-9
    assert all(t.level_dbfs == -20.0 and t.enabled for t in turns)


def test_time_shared_refuses_a_turn_outside_the_cycle_and_caps_the_period() -> None:
    with pytest.raises(ValueError):
        EmitSchedule.time_shared(2, 2)
    crowded = EmitSchedule.time_shared(MAX_EMIT_SLOTS, MAX_EMIT_SLOTS + 1)
    assert crowded.period_s <= 60 and crowded.offset_s == 0.0
