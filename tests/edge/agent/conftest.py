"""Fixtures for the agent suites: a real Mosquitto per test, a test hub, node options."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.agent.agent import Agent
from edge.agent.settings import AgentOptions
from edge.audio.emitter import Emitter
from edge.audio.sources import ArraySource
from edge.modem.detector import StreamingDetector
from tests.edge.agent.brokers import AckingHub, Amqtt, Mosquitto, wait_for

NODE_ID = "store-0001-n1"
NODE_PASSWORD = "node-one-password-0001"
OTHER_NODE = "store-0002-n1"
OTHER_PASSWORD = "node-two-password-0002"


@pytest.fixture
def broker(mosquitto_bin: str, tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto of our own with two nodes and the hub as users, ACL by pattern."""
    instance = Mosquitto(
        mosquitto_bin,
        tmp_path / "broker",
        {NODE_ID: NODE_PASSWORD, OTHER_NODE: OTHER_PASSWORD},
    )
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def amqtt_broker(tmp_path: Path) -> Iterator[Amqtt]:
    """The fallback broker the hub runs when Mosquitto is missing, with the same users."""
    instance = Amqtt(tmp_path / "amqtt", {NODE_ID: NODE_PASSWORD, OTHER_NODE: OTHER_PASSWORD})
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def hub(broker: Mosquitto) -> Iterator[AckingHub]:
    """The test hub, connected and subscribed."""
    test_hub = AckingHub("127.0.0.1", broker.port)
    wait_for(test_hub.connected.is_set, what="test hub to connect")
    yield test_hub
    test_hub.close()


@pytest.fixture
def node_options(broker: Mosquitto, tmp_path: Path) -> Callable[..., AgentOptions]:
    """Options for node one against the test broker, with short test timeouts."""

    def make(**overrides: Any) -> AgentOptions:
        values: dict[str, Any] = {
            "node_id": NODE_ID,
            "password": NODE_PASSWORD,
            "broker_url": broker.url,
            "data_dir": tmp_path / "node",
            "sample_rate": 48000,
            "ack_timeout_s": 1.0,
            "flush_timeout_s": 3.0,
        }
        values.update(overrides)
        return AgentOptions(**values)

    return make


def real_detector(sample_rate: int) -> StreamingDetector:
    """The modem's streaming detector (these suites inject hearings at the agent's inbox)."""
    return StreamingDetector(sample_rate)


@pytest.fixture
def make_agent(node_options: Callable[..., AgentOptions]) -> Iterator[Callable[..., Agent]]:
    """Build agents listening to silence; every agent built is stopped at teardown."""
    built: list[Agent] = []

    def make(emitter: Emitter | None = None, source: Any = None, **overrides: Any) -> Agent:
        options = node_options(**overrides)
        src = source if source is not None else ArraySource(np.zeros(0, np.float32), 48000)
        agent = Agent(options, src, real_detector(options.sample_rate), emitter)
        built.append(agent)
        return agent

    yield make
    for agent in built:
        if not agent.stopped:
            agent.stop(flush_timeout_s=0.5)
