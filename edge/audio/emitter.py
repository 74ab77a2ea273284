"""The beacon emitter: on each turn of its schedule it re-derives the rotating code and plays it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from edge.audio.sinks import AudioSink
from edge.modem.codes import beacon_code, slot_of
from storewave.wire import BeaconKey, EmitSchedule

log = logging.getLogger(__name__)

# Frames cached per (code, level): a code lives one slot (30 s) and the node plays it
# every second, so synthesis runs once per slot instead of once per frame.
_CACHE_SIZE = 4
# Wait between tries when the output device fails, so a missing card does not spin.
_ERROR_BACKOFF_S = 5.0


class Emitter:
    """Plays the node's rotating beacon code on its schedule; reconfigurable while running."""

    def __init__(
        self,
        sink: AudioSink,
        sample_rate: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Emit into ``sink`` at ``sample_rate``; ``clock`` gives Unix seconds (for slots)."""
        self._sink = sink
        self._rate = sample_rate
        self._clock = clock
        self._lock = threading.Lock()
        self._schedule = EmitSchedule(enabled=False)
        self._beacon: BeaconKey | None = None
        self._cache: dict[tuple[int, float], np.ndarray] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_emitted = 0
        self.errors = 0
        # The turn (Unix time) of the frame the schedule plays or played last.
        self.last_turn_s: float | None = None

    def configure(self, schedule: EmitSchedule, beacon: BeaconKey | None) -> None:
        """Take a new schedule and key; applies from the next frame, without a restart."""
        with self._lock:
            self._schedule = schedule
            self._beacon = beacon
            self._cache.clear()
        self._wake.set()

    def current_code(self) -> int | None:
        """The code for the current slot, or None without a beacon key."""
        with self._lock:
            beacon = self._beacon
        if beacon is None:
            return None
        slot = slot_of(self._clock(), beacon.slot_s)
        return beacon_code(beacon.short_id, bytes.fromhex(beacon.key_hex), slot)

    def _frame(self, code: int, level_dbfs: float) -> np.ndarray:
        """Synthesized frame for ``code`` at ``level_dbfs`` (cached for the slot)."""
        from edge.modem.synth import synthesize_frame

        key = (code, level_dbfs)
        with self._lock:
            frame = self._cache.get(key)
        if frame is None:
            frame = synthesize_frame(code, self._rate, level_dbfs)
            with self._lock:
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.clear()
                self._cache[key] = frame
        return frame

    def emit_now(self) -> int | None:
        """Play the current code once, now; return it (None without a key)."""
        code = self.current_code()
        if code is None:
            return None
        with self._lock:
            level = self._schedule.level_dbfs
        self._sink.play(self._frame(code, level))
        self.frames_emitted += 1
        return code

    def next_turn(self, schedule: EmitSchedule, now_s: float) -> float:
        """The Unix time of this node's next frame: ``k * period_s + offset_s``, after the last.

        Beacons of one store share a wall clock (NTP) and get distinct offsets from the
        hub, so they take turns instead of colliding. A turn is never played twice, and
        a late thread skips the turns it missed rather than play off its turn.
        """
        after = now_s
        if self.last_turn_s is not None:
            after = max(now_s, self.last_turn_s + schedule.period_s / 2)
        return schedule.next_start(after)

    def _run(self) -> None:
        """Emit on each turn of the schedule while enabled; survive device errors."""
        while not self._stop.is_set():
            with self._lock:
                schedule = self._schedule
                has_key = self._beacon is not None
            if not (schedule.enabled and has_key):
                self._wake.wait()
                self._wake.clear()
                continue
            turn = self.next_turn(schedule, self._clock())
            if self._wake.wait(max(0.0, turn - self._clock())):
                self._wake.clear()
                continue  # reconfigured (or stopping) while waiting: look again
            self.last_turn_s = turn
            try:
                self.emit_now()
            except Exception:  # a flaky card must not kill the node; logged and retried
                self.errors += 1
                log.exception("emitter could not play a frame")
                self._stop.wait(_ERROR_BACKOFF_S)

    def start(self) -> None:
        """Start the emitting thread."""
        self._thread = threading.Thread(target=self._run, name="emitter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop emitting and wait for the current frame to finish."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=_ERROR_BACKOFF_S)
