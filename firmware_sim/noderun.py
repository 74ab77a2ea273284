"""Run simulated node firmware in real time against a broker (one loop ticks every node)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from firmware_sim.device import Credentials, Device, NodeStorage
from firmware_sim.link import parse_broker_url
from firmware_sim.watchdog import Supervisor

# The firmware's main loop period: 20 ms, one audio block.
TICK_S = 0.02
MAX_NODES = 2_000


@dataclass(frozen=True, slots=True)
class NodeReport:
    """Where one node ended up."""

    node_id: str
    state: str
    boot: int
    config_version: int
    emitted: int
    unacked: int
    restarts: int


def run_nodes(
    broker_url: str,
    credentials: dict[str, str],
    duration_s: float,
    on_tick: Callable[[list[Supervisor]], None] | None = None,
) -> list[NodeReport]:
    """Boot one supervised firmware per node, run them for ``duration_s``, stop them."""
    if not credentials:
        raise ValueError("no nodes: give at least one node id and password")
    if len(credentials) > MAX_NODES:
        raise ValueError(f"at most {MAX_NODES} nodes per run")
    if duration_s <= 0:
        raise ValueError("duration_s must be positive")
    broker = parse_broker_url(broker_url)

    def factory(node_id: str, password: str) -> Callable[[NodeStorage], Device]:
        """A device factory for the watchdog, with fixed credentials."""
        creds = Credentials(node_id, password)
        return lambda storage: Device(lambda: creds, broker, storage)

    sups = [Supervisor(factory(n, p), NodeStorage()) for n, p in sorted(credentials.items())]
    stop_at = time.monotonic() + duration_s
    try:
        while time.monotonic() < stop_at:
            started = time.monotonic()
            for sup in sups:
                sup.tick()
            if on_tick is not None:
                on_tick(sups)
            time.sleep(max(0.0, TICK_S - (time.monotonic() - started)))
        # Where each node was when the run ended (before the clean shutdown below).
        return [_report(node, sup) for node, sup in zip(sorted(credentials), sups, strict=True)]
    finally:
        for sup in sups:
            sup.stop()


def _report(node_id: str, sup: Supervisor) -> NodeReport:
    """Where one supervised node is now."""
    dev = sup.device
    return NodeReport(
        node_id=node_id,
        state=dev.state.value,
        boot=sup.storage.boot,
        config_version=dev.config.version if dev.config else 0,
        emitted=len(dev.emitted),
        unacked=len(sup.storage.outbox),
        restarts=len(sup.restarts),
    )
