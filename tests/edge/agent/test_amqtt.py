"""The agent on the fallback broker (amqtt, as the hub runs it): publish, ack, resend, status."""

from __future__ import annotations

from collections.abc import Callable

from edge.agent.agent import Agent
from edge.agent.settings import AgentOptions
from tests.edge.agent.brokers import HUB_PASSWORD, AckingHub, Amqtt, wait_for
from tests.edge.agent.conftest import NODE_ID
from tests.edge.agent.helpers import Heard, token


def test_publish_ack_and_resend_on_amqtt(
    amqtt_broker: Amqtt, make_agent: Callable[..., Agent], node_options: Callable[..., AgentOptions]
) -> None:
    hub = AckingHub("127.0.0.1", amqtt_broker.port, user=Amqtt.hub_user, password=HUB_PASSWORD)
    try:
        wait_for(hub.connected.is_set, what="hub on amqtt")
        hub.acking = False
        agent = make_agent(broker_url=amqtt_broker.url)
        agent.start()
        for i in range(20):
            agent.post_detection(Heard(token(i)))
        wait_for(lambda: len(hub.of_type("detection")) == 20, what="20 detections via amqtt")
        wait_for(lambda: hub.received >= 40, what="resent while unacknowledged")
        assert agent.outbox.depth == 20
        hub.acking = True
        wait_for(agent.drained, what="acks via amqtt free the outbox")
        assert sorted(e.seq for e in hub.of_type("detection")) == list(range(20))
        assert (NODE_ID, {"state": "online", "boot": agent.boot}) in hub.statuses
        connected_before_stop = agent.link.connected
        agent.stop()
        try:
            wait_for(lambda: hub.statuses[-1][1]["state"] == "offline", what="offline via amqtt")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; statuses {hub.statuses}; connected {connected_before_stop}; "
                f"connects {agent.link.connects}"
            ) from None
    finally:
        hub.close()
