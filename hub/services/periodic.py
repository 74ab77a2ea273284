"""A background thread that runs one sweep every N seconds until stopped (timers, outbox)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PeriodicWorker:
    """Calls ``sweep()`` every ``interval_s`` on a daemon thread; a failing sweep is logged
    and retried next interval, so a database blip never stops the hub's background work."""

    def __init__(self, name: str, sweep: Callable[[], object], interval_s: float) -> None:
        """Prepare the worker; ``start()`` launches the thread."""
        self.name = name
        self._sweep = sweep
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        """Start sweeping."""
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Let the current sweep finish, then stop."""
        self._stop.set()
        self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sweep()
            except Exception:  # the sweep must outlive a database blip
                log.exception("%s sweep failed; retrying next interval", self.name)
            self._stop.wait(self._interval_s)
