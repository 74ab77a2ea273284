"""The emitter: the code follows the time slot, frames at the configured level, reconfigurable."""

from __future__ import annotations

import numpy as np

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
