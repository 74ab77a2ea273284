"""A simulated sound card: real-time-paced seeded noise, with what the emitter plays looped in."""

from __future__ import annotations

import threading
import time

import numpy as np

from edge.audio.blockqueue import BlockQueue
from edge.audio.sources import DEFAULT_BLOCK_FRAMES

# A quiet shop at the microphone in the 18-20 kHz band: about -70 dBFS of white noise
# leaves the default -12 dBFS beacon well above the detector's threshold.
DEFAULT_NOISE_DBFS = -70.0
# The loop (emitter -> microphone) is attenuated like a speaker a metre from the mic.
DEFAULT_LOOP_GAIN_DB = -6.0
# Seed for the noise so a run of the simulator is repeatable.
DEFAULT_SEED = 20131001


def db_to_gain(db: float) -> float:
    """Linear amplitude for ``db`` decibels."""
    return float(10.0 ** (db / 20.0))


class SimAudio:
    """Both ends of a simulated room: an input source and an output sink for the emitter.

    ``play`` mixes a frame into the samples the input will deliver next, so a node run
    with ``--sim`` hears its own beacon (self-test works, detections flow).
    """

    def __init__(
        self,
        sample_rate: int,
        noise_dbfs: float = DEFAULT_NOISE_DBFS,
        loop_gain_db: float = DEFAULT_LOOP_GAIN_DB,
        block_frames: int = DEFAULT_BLOCK_FRAMES,
        seed: int = DEFAULT_SEED,
    ) -> None:
        """Create the room; nothing runs until ``start``."""
        self.sample_rate = sample_rate
        self._noise_rms = db_to_gain(noise_dbfs)
        self._loop_gain = db_to_gain(loop_gain_db)
        self._block_frames = block_frames
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._pending = np.zeros(0, dtype=np.float32)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def play(self, samples: np.ndarray) -> None:
        """Emitter side: mix ``samples`` into the room from the next block on."""
        frame = np.asarray(samples, dtype=np.float32) * self._loop_gain
        with self._lock:
            if len(self._pending) < len(frame):
                grown = np.zeros(len(frame), dtype=np.float32)
                grown[: len(self._pending)] = self._pending
                self._pending = grown
            self._pending[: len(frame)] += frame

    def _next_block(self) -> np.ndarray:
        """One block of noise plus whatever was played into the room."""
        block = (self._rng.standard_normal(self._block_frames) * self._noise_rms).astype(np.float32)
        with self._lock:
            take = min(len(self._pending), self._block_frames)
            if take:
                block[:take] += self._pending[:take]
                self._pending = self._pending[take:]
        return block

    def _run(self, blocks: BlockQueue) -> None:
        """Deliver a block every block period, like a sound card (drops count as overruns)."""
        period_s = self._block_frames / self.sample_rate
        next_due = time.monotonic()
        while not self._stop.is_set():
            blocks.offer(self._next_block())
            next_due += period_s
            self._stop.wait(max(0.0, next_due - time.monotonic()))

    def start(self, blocks: BlockQueue) -> None:
        """Start (or restart) the room's clock."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(blocks,), name="audio-sim")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop the room's clock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    @property
    def finished(self) -> bool:
        """The simulated room never runs out."""
        return False
