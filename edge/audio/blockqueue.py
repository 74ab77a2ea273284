"""A bounded hand-off from the audio callback thread to the detector thread."""

from __future__ import annotations

import queue
import threading

import numpy as np


class BlockQueue:
    """Bounded FIFO of audio blocks; a full queue drops the new block and counts an overrun.

    The audio callback must never block (PortAudio would glitch or stall), so ``offer``
    never waits. ``put`` (for file sources that can wait) blocks instead of dropping.
    """

    def __init__(self, max_blocks: int) -> None:
        """Create a queue holding at most ``max_blocks`` blocks."""
        if max_blocks < 1:
            raise ValueError("max_blocks must be >= 1")
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=max_blocks)
        self._lock = threading.Lock()
        self._overruns = 0

    @property
    def overruns(self) -> int:
        """Blocks dropped because the detector fell behind."""
        with self._lock:
            return self._overruns

    def add_overruns(self, count: int) -> None:
        """Count overruns seen elsewhere (e.g. PortAudio's input_overflow flag)."""
        with self._lock:
            self._overruns += count

    def offer(self, block: np.ndarray) -> bool:
        """Enqueue without waiting; on a full queue drop ``block``, count it, return False."""
        try:
            self._queue.put_nowait(block)
        except queue.Full:
            self.add_overruns(1)
            return False
        return True

    def put(self, block: np.ndarray | None, timeout_s: float | None = None) -> None:
        """Enqueue (None = end marker), waiting for room; ``queue.Full`` after ``timeout_s``."""
        self._queue.put(block, timeout=timeout_s)

    def close(self) -> None:
        """Wake the consumer with an end marker (waits for room so it is never lost)."""
        self._queue.put(None)

    def get(self, timeout_s: float | None = None) -> np.ndarray | None:
        """Next block, ``None`` at the end marker; raises ``queue.Empty`` on timeout."""
        return self._queue.get(timeout=timeout_s)

    def qsize(self) -> int:
        """Blocks waiting (approximate, as ``queue.Queue.qsize``)."""
        return self._queue.qsize()
