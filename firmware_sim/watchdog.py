"""The node's watchdog: run the firmware loop, restart it with a new boot on a fault or stall."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from firmware_sim.device import Device
from firmware_sim.nodetypes import NodeStorage

log = logging.getLogger(__name__)

# The watchdog fires when the audio pipeline makes no progress this long (a stalled
# capture callback); 5 s is longer than any legitimate pause (config apply, self-test).
WATCHDOG_TIMEOUT_S = 5.0


class Supervisor:
    """The watchdog: runs a node's loop and restarts it (new boot) on a fault or a stall."""

    def __init__(
        self,
        factory: Callable[[NodeStorage], Device],
        storage: NodeStorage,
        clock: Callable[[], float] = time.monotonic,
        timeout_s: float = WATCHDOG_TIMEOUT_S,
    ) -> None:
        """Create the first device instance from ``factory`` (not started until ``tick``)."""
        self._factory = factory
        self._clock = clock
        self.timeout_s = timeout_s
        self.storage = storage
        self.device = factory(storage)
        self.restarts: list[str] = []

    def tick(self) -> None:
        """Run one device tick; restart it when it raised or its audio stalled too long."""
        try:
            self.device.tick()
        except Exception as exc:  # a firmware fault of any kind is what a watchdog is for
            self._restart(f"fault: {type(exc).__name__}: {exc}")
            return
        if self._clock() - self.device.audio_progress > self.timeout_s:
            self._restart("watchdog: audio pipeline stalled")

    def _restart(self, reason: str) -> None:
        """Crash the current instance (Last Will fires) and boot a new one."""
        log.warning("watchdog restart", extra={"why": reason})
        self.restarts.append(reason)
        self.device.stop(clean=False)
        self.device = self._factory(self.storage)

    def stop(self) -> None:
        """Stop the current device cleanly."""
        self.device.stop(clean=True)
