"""The agent on a real Mosquitto: publish/ack, resend, outage, status, config, commands, ACL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.agent.agent import Agent
from edge.audio.emitter import Emitter
from edge.audio.sinks import NullSink
from storewave.wire import (
    BeaconKey,
    CommandName,
    EmitSchedule,
    NodeCommand,
    NodeConfig,
    NodeLeaf,
    node_topic,
    utc_now,
)
from tests.edge.agent.brokers import AckingHub, Mosquitto, wait_for
from tests.edge.agent.conftest import NODE_ID, OTHER_NODE, OTHER_PASSWORD
from tests.edge.agent.helpers import Heard, token

KEY_HEX = "00112233445566778899aabbccddeeff"


def _codes(hub: AckingHub) -> list[str]:
    return [e.body.code for e in hub.of_type("detection")]


def test_publish_then_hub_ack_frees_the_outbox_and_unacked_events_are_resent(
    make_agent: Callable[..., Agent], hub: AckingHub
) -> None:
    hub.acking = False
    agent = make_agent()
    agent.start()
    for i in range(3):
        agent.post_detection(Heard(token(i)))
    wait_for(lambda: len(_codes(hub)) == 3, what="3 detections at the hub")
    assert agent.outbox.depth == 3  # PUBACK is not enough: nothing freed without the hub's ack
    wait_for(lambda: hub.received >= 6, what="unacked events resent after the ack timeout")
    assert agent.outbox.depth == 3
    hub.acking = True
    wait_for(agent.drained, what="outbox freed by the hub's ack")
    events = hub.of_type("detection")
    assert [(e.boot, e.seq) for e in events] == [(agent.boot, 0), (agent.boot, 1), (agent.boot, 2)]
    assert all(e.node == NODE_ID and e.body.count == 1 for e in events)
    assert hub.statuses[0] == (NODE_ID, {"state": "online", "boot": agent.boot})
    agent.stop()
    wait_for(lambda: hub.statuses[-1][1]["state"] == "offline", what="offline status")


def test_broker_killed_and_restarted_mid_stream_loses_nothing(
    make_agent: Callable[..., Agent], hub: AckingHub, broker: Mosquitto
) -> None:
    total = 300
    agent = make_agent()
    agent.start()
    posted = threading.Semaphore(0)

    def inject() -> None:
        for i in range(total):
            agent.post_detection(Heard(token(i)))
            posted.release()
            threading.Event().wait(0.005)  # a steady stream, ~200 hearings/s

    feeder = threading.Thread(target=inject)
    feeder.start()
    for _ in range(total // 3):
        posted.acquire()
    broker.kill()
    wait_for(lambda: not agent.link.connected, what="the node to notice the outage")
    for _ in range(total // 3):
        posted.acquire()
    broker.start()
    feeder.join()
    wait_for(lambda: len(_codes(hub)) >= total, timeout_s=30, what="every detection at the hub")
    codes = _codes(hub)
    assert sorted(codes) == sorted({f"{token(i):012x}" for i in range(total)})
    assert len(codes) == total  # each event stored under exactly one (boot, seq)
    wait_for(agent.drained, what="outbox drained after the outage")


def test_bad_configs_are_rejected_reported_and_the_last_good_one_kept(
    make_agent: Callable[..., Agent], hub: AckingHub
) -> None:
    agent = make_agent()
    agent.start()
    topic = node_topic(NODE_ID, NodeLeaf.CONFIG)
    good = NodeConfig(version=2, emit=EmitSchedule(enabled=False), telemetry_period_s=60)
    hub.publish(topic, good.to_bytes(), retain=True)
    wait_for(lambda: agent.config_version == 2, what="config v2 applied")
    hub.publish(topic, b'{"version": 3, "emit": {"level_dbfs": 6.0}}', retain=True)
    hub.publish(topic, NodeConfig(version=1).to_bytes(), retain=True)
    hub.publish(topic, b"not json at all", retain=True)
    wait_for(lambda: len(hub.of_type("config_rejected")) == 3, what="three rejections")
    reasons = [
        (e.body.version, e.body.kept_version, e.body.reason) for e in hub.of_type("config_rejected")
    ]
    assert reasons[0][:2] == (3, 2) and "level_dbfs" in reasons[0][2]
    assert reasons[1][:2] == (1, 2) and "not newer" in reasons[1][2]
    assert reasons[2][:2] == (0, 2) and "invalid NodeConfig" in reasons[2][2]
    assert agent.config == good and agent.rejected_configs == 3
    agent.stop()
    assert make_agent().config == good  # persisted: a restart needs no broker


def test_config_applies_without_restart_and_drives_emitter_and_telemetry(
    make_agent: Callable[..., Agent], hub: AckingHub
) -> None:
    sink = NullSink()
    emitter = Emitter(sink, 48000)
    agent = make_agent(emitter=emitter)
    agent.start()
    config = NodeConfig(
        version=5,
        emit=EmitSchedule(enabled=True, level_dbfs=-20.0, period_s=0.5),
        beacon=BeaconKey(short_id=77, key_hex=KEY_HEX, slot_s=30),
        telemetry_period_s=1,
    )
    hub.publish(node_topic(NODE_ID, NodeLeaf.CONFIG), config.to_bytes(), retain=True)
    wait_for(lambda: sink.frames_played >= 2, what="the emitter to play the schedule")
    assert emitter.current_code() is not None and emitter.current_code() >> 30 == 77
    wait_for(lambda: len(hub.of_type("telemetry")) >= 2, what="telemetry every second")
    body = hub.of_type("telemetry")[-1].body
    assert body.config_version == 5 and body.version and body.uptime_s > 0
    off = config.model_copy(update={"version": 6, "emit": EmitSchedule(enabled=False)})
    hub.publish(node_topic(NODE_ID, NodeLeaf.CONFIG), off.to_bytes(), retain=True)
    wait_for(lambda: agent.config_version == 6, what="config v6")


def test_commands_run_once_and_expired_ones_are_refused(
    make_agent: Callable[..., Agent], hub: AckingHub
) -> None:
    sink = NullSink()
    agent = make_agent(emitter=Emitter(sink, 48000))
    agent.start()
    config = NodeConfig(version=2, emit=EmitSchedule(enabled=False))
    hub.publish(node_topic(NODE_ID, NodeLeaf.CONFIG), config.to_bytes(), retain=True)
    wait_for(lambda: agent.config_version == 2, what="config applied")
    cmd_topic = node_topic(NODE_ID, NodeLeaf.CMD)
    soon = utc_now() + timedelta(minutes=1)
    emit_no_key = NodeCommand(cmd=CommandName.EMIT_NOW, expires_at=soon)
    expired = NodeCommand(cmd=CommandName.EMIT_NOW, expires_at=utc_now() - timedelta(seconds=1))
    beacon = BeaconKey(short_id=9, key_hex=KEY_HEX)
    set_beacon = NodeCommand(
        cmd=CommandName.SET_BEACON, expires_at=soon, args={"beacon": beacon.model_dump()}
    )
    emit = NodeCommand(cmd=CommandName.EMIT_NOW, expires_at=soon)
    flush = NodeCommand(cmd=CommandName.FLUSH_QUEUE, expires_at=soon)
    for cmd in (emit_no_key, expired, set_beacon, emit, flush):
        hub.publish(cmd_topic, cmd.to_bytes())
    wait_for(lambda: len(hub.of_type("command_result")) == 5, what="five command results")
    results = {e.body.command_id: e.body for e in hub.of_type("command_result")}
    assert not results[emit_no_key.id].ok and "no beacon" in results[emit_no_key.id].detail
    assert not results[expired.id].ok and "expired" in results[expired.id].detail
    assert results[set_beacon.id].ok and results[emit.id].ok and results[flush.id].ok
    wait_for(lambda: sink.frames_played == 1, what="exactly one frame from emit_now")


def test_a_node_cannot_publish_or_read_outside_its_own_subtree(
    hub: AckingHub, broker: Mosquitto
) -> None:
    """Node two's credentials against node one's topics: refused by the broker's ACL."""
    published: dict[int, object] = {}
    got: list[str] = []
    subscribed = threading.Event()
    own_ack = threading.Event()
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=OTHER_NODE,
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(OTHER_NODE, OTHER_PASSWORD)
    client.on_publish = lambda c, u, mid, reason, props: published.__setitem__(mid, reason)
    client.on_subscribe = lambda c, u, mid, reasons, props: subscribed.set()

    def on_message(c: object, u: object, msg: mqtt.MQTTMessage) -> None:
        got.append(msg.topic)
        if msg.topic == node_topic(OTHER_NODE, NodeLeaf.ACK):
            own_ack.set()

    client.on_message = on_message
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        forged = b'{"v":1}'
        info_other = client.publish(node_topic(NODE_ID, NodeLeaf.EVENTS), forged, qos=1)
        info_own = client.publish(node_topic(OTHER_NODE, NodeLeaf.STATUS), b"{}", qos=1)
        client.subscribe([(node_topic(n, NodeLeaf.ACK), 1) for n in (NODE_ID, OTHER_NODE)])
        wait_for(lambda: len(published) == 2 and subscribed.is_set(), what="PUBACKs, SUBACK")
        # The hub acks node one, then node two: node two must only ever see its own.
        hub.publish(node_topic(NODE_ID, NodeLeaf.ACK), b'{"boot":1,"seq":0}')
        hub.publish(node_topic(OTHER_NODE, NodeLeaf.ACK), b'{"boot":1,"seq":0}')
        assert own_ack.wait(10)
    finally:
        client.loop_stop()
        client.disconnect()
    assert str(published[info_other.mid]) == "Not authorized"
    assert str(published[info_own.mid]) == "Success"
    assert got == [node_topic(OTHER_NODE, NodeLeaf.ACK)]
    assert hub.received == 0  # nothing forged reached the hub


def test_overruns_are_counted_and_reported_in_telemetry(
    make_agent: Callable[..., Agent],
) -> None:
    import numpy as np

    agent = make_agent(block_queue_len=4)
    block = np.zeros(1024, np.float32)
    accepted = [agent.blocks.offer(block) for _ in range(10)]
    assert accepted == [True] * 4 + [False] * 6
    assert agent.telemetry_body().overruns == 6
