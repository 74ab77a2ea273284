"""A node process for the crash tests: an Agent fed N hearings, run until SIGTERM (or kill -9).

Run as ``python -m tests.edge.agent.node_driver OPTIONS_JSON N MARKER``: once all N
hearings are in the outbox it writes MARKER, then keeps publishing until stopped.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

import numpy as np

from edge.agent.agent import Agent
from edge.agent.settings import AgentOptions
from edge.audio.sources import ArraySource
from tests.edge.agent.conftest import real_detector
from tests.edge.agent.helpers import Heard, token


def main(argv: list[str]) -> int:
    """Run one node until SIGTERM."""
    raw = json.loads(argv[0])
    raw["data_dir"] = Path(raw["data_dir"])
    options = AgentOptions(**raw)
    count, marker = int(argv[1]), Path(argv[2])
    agent = Agent(
        options,
        ArraySource(np.zeros(0, np.float32), options.sample_rate),
        real_detector(options.sample_rate),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    agent.start()
    for i in range(count):
        agent.post_detection(Heard(token(i)))
    while agent.frames_heard < count and not stop.wait(0.01):
        pass
    marker.write_text(str(agent.boot))
    stop.wait()
    agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
