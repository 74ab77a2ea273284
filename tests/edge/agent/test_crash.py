"""The node killed with -9 mid-drain and restarted: it drains, in order, with no loss."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from edge.agent.settings import AgentOptions
from tests.edge.agent.brokers import AckingHub, wait_for
from tests.edge.agent.conftest import NODE_ID
from tests.edge.agent.helpers import token

REPO = Path(__file__).resolve().parents[3]
# Slow enough that the kill lands while most of the backlog is still unsent, even when
# a loaded machine deschedules the test for a second or two.
DRAIN_RATE_PER_S = 50.0


def _spawn(options: AgentOptions, count: int, marker: Path) -> subprocess.Popen[bytes]:
    """Start a node process that stores ``count`` hearings, then drains until stopped."""
    raw = dataclasses.asdict(options)
    raw["data_dir"] = str(options.data_dir)
    module = "tests.edge.agent.node_driver"
    argv = [sys.executable, "-m", module, json.dumps(raw), str(count), str(marker)]
    return subprocess.Popen(argv, cwd=REPO)


def test_kill_9_mid_drain_then_restart_delivers_everything_once(
    node_options: Callable[..., AgentOptions], hub: AckingHub, tmp_path: Path
) -> None:
    total = 200
    options = node_options(drain_rate_per_s=DRAIN_RATE_PER_S)
    first = _spawn(options, total, tmp_path / "first")
    try:
        wait_for((tmp_path / "first").exists, what="all hearings in the outbox")
        wait_for(lambda: len(hub.of_type("detection")) >= total // 4, what="part of the drain")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    assert len(hub.of_type("detection")) < total  # the kill really was mid-drain
    wait_for(lambda: hub.statuses[-1] == (NODE_ID, {"state": "lost", "boot": 1}), what="will")

    second = _spawn(options, 0, tmp_path / "second")
    try:
        wait_for(
            lambda: len(hub.of_type("detection")) >= total, timeout_s=20, what="the full drain"
        )
        events = hub.of_type("detection")
        assert sorted(e.body.code for e in events) == sorted(
            f"{token(i):012x}" for i in range(total)
        )
        assert len(events) == total  # nothing stored twice under two (boot, seq)
        boots = {e.boot for e in events}
        assert boots <= {1, 2}
        for boot in boots:  # in order and without gaps within each boot
            seqs = [e.seq for e in events if e.boot == boot]
            assert seqs == list(range(len(seqs)))
        assert (NODE_ID, {"state": "online", "boot": 2}) in hub.statuses
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=15) == 0
    wait_for(lambda: hub.statuses[-1] == (NODE_ID, {"state": "offline", "boot": 2}), what="bye")
