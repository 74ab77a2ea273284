"""The emitter: the code follows the time slot, frames at the configured level, reconfigurable."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edge.audio.emitter import Emitter
from edge.modem.codes import beacon_code
from edge.modem.detector import StreamingDetector
from storewave.wire import BeaconKey, EmitSchedule
from tests.edge.agent.brokers import wait_for

KEY_HEX = "00112233445566778899aabbccddeeff"


class _Clock:
    """A settable Unix clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class _Recorder:
    """A sink that keeps what it was given."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def play(self, samples: np.ndarray) -> None:
        self.frames.append(samples)


def test_code_is_re_derived_from_the_key_every_slot() -> None:
    clock = _Clock(30 * 1000 + 0.5)
    emitter = Emitter(_Recorder(), 48000, clock=clock)
    assert emitter.current_code() is None  # no key yet: nothing to emit
    emitter.configure(EmitSchedule(), BeaconKey(short_id=5, key_hex=KEY_HEX, slot_s=30))
    key = bytes.fromhex(KEY_HEX)
    assert emitter.current_code() == beacon_code(5, key, 1000)
    clock.now += 29.0
    assert emitter.current_code() == beacon_code(5, key, 1000)
    clock.now += 1.0
    assert emitter.current_code() == beacon_code(5, key, 1001)


def test_emit_now_plays_a_decodable_frame_at_the_configured_level() -> None:
    sink = _Recorder()
    emitter = Emitter(sink, 48000, clock=_Clock(12345.0))
    emitter.configure(
        EmitSchedule(level_dbfs=-20.0), BeaconKey(short_id=77, key_hex=KEY_HEX, slot_s=30)
    )
    code = emitter.emit_now()
    (frame,) = sink.frames
    assert abs(20 * np.log10(np.max(np.abs(frame))) - (-20.0)) < 0.5
    detector = StreamingDetector(48000)
    heard = detector.feed(np.concatenate([np.zeros(4800, np.float32), frame])) + detector.flush()
    assert [d.payload for d in heard] == [code]


def test_schedule_runs_on_its_thread_and_stops_when_disabled() -> None:
    sink = _Recorder()
    emitter = Emitter(sink, 48000)
    emitter.start()
    try:
        beacon = BeaconKey(short_id=1, key_hex=KEY_HEX)
        emitter.configure(EmitSchedule(enabled=True, period_s=0.5), beacon)
        wait_for(lambda: len(sink.frames) >= 2, what="two scheduled frames")
        emitter.configure(EmitSchedule(enabled=False), beacon)
    finally:
        emitter.stop()
    assert emitter.errors == 0


def test_next_turn_follows_the_offset_grid_and_never_repeats_a_turn() -> None:
    emitter = Emitter(_Recorder(), 48000, clock=_Clock(0.0))
    schedule = EmitSchedule(period_s=1.1, offset_s=0.55)
    first = emitter.next_turn(schedule, 1000.0)
    assert first == pytest.approx(1000.45)  # 909 * 1.1 + 0.55
    emitter.last_turn_s = first
    assert emitter.next_turn(schedule, first) == pytest.approx(first + 1.1)
    # A thread that woke 2.5 periods late skips the missed turns, still on the grid.
    late = emitter.next_turn(schedule, first + 2.5 * 1.1)
    assert late == pytest.approx(first + 3 * 1.1)


def test_scheduled_frames_play_on_their_turns() -> None:
    """Frames start no earlier than their turn, and turns are k * period + offset."""
    emitter: Emitter
    played: list[tuple[float, float | None]] = []

    class _TurnRecorder(_Recorder):
        def play(self, samples: np.ndarray) -> None:
            played.append((time.time(), emitter.last_turn_s))

    emitter = Emitter(_TurnRecorder(), 48000)
    emitter.start()
    try:
        schedule = EmitSchedule(enabled=True, period_s=0.6, offset_s=0.25)
        emitter.configure(schedule, BeaconKey(short_id=1, key_hex=KEY_HEX))
        wait_for(lambda: len(played) >= 3, what="three scheduled frames")
    finally:
        emitter.stop()
    turns = [turn for _, turn in played]
    assert all(t is not None for t in turns)
    assert turns == sorted(set(turns))  # each turn once, in order
    for at, turn in played:
        assert turn is not None and at >= turn - 0.005  # not before its turn
        k = (turn - 0.25) / 0.6
        assert k == pytest.approx(round(k), abs=1e-6)
