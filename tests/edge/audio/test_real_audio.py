"""Real audio: the node plays its beacon through sounddevice and hears it back (PulseAudio)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from edge.agent.agent import Agent
from edge.audio.emitter import Emitter
from edge.audio.sinks import SoundDeviceSink
from edge.audio.sources import SoundDeviceSource
from edge.modem.codes import MAC_BITS, to_hex
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
from tests.edge.agent.brokers import AckingHub, wait_for
from tests.edge.agent.conftest import NODE_ID

pytestmark = pytest.mark.audio
SHORT_ID = 4242
KEY_HEX = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.mark.parametrize("rate", [48000, 44100])
def test_node_hears_its_own_beacon_through_a_real_sound_server(
    rate: int, pulse_device: str, make_agent: Callable[..., Agent], hub: AckingHub
) -> None:
    # Always explicit: the pulse device reports 44100 as its default whatever we want.
    emitter = Emitter(SoundDeviceSink(rate, pulse_device), rate)
    agent = make_agent(
        emitter=emitter, source=SoundDeviceSource(rate, pulse_device), sample_rate=rate
    )
    agent.start()
    config = NodeConfig(
        version=1,
        emit=EmitSchedule(enabled=True, level_dbfs=-12.0, period_s=1.0),
        beacon=BeaconKey(short_id=SHORT_ID, key_hex=KEY_HEX, slot_s=30),
    )
    topic = node_topic(NODE_ID, NodeLeaf.CONFIG)
    hub.publish(topic, config.to_bytes(), retain=True)
    wait_for(lambda: hub.of_type("detection"), timeout_s=15, what="the beacon heard back")
    heard = hub.of_type("detection")[0].body
    assert heard.kind == "beacon" and int(heard.code, 16) >> MAC_BITS == SHORT_ID
    assert heard.snr_db > 10 and heard.confidence > 0.8

    quiet = config.model_copy(update={"version": 2, "emit": EmitSchedule(enabled=False)})
    hub.publish(topic, quiet.to_bytes(), retain=True)
    wait_for(lambda: agent.config_version == 2, what="schedule switched off")
    cmd = NodeCommand(cmd=CommandName.SELF_TEST, expires_at=utc_now() + timedelta(minutes=1))
    hub.publish(node_topic(NODE_ID, NodeLeaf.CMD), cmd.to_bytes())
    wait_for(lambda: hub.of_type("self_test"), timeout_s=15, what="the self-test result")
    result = hub.of_type("self_test")[0].body
    current = emitter.current_code()
    assert current is not None
    assert result.ok, result.detail
    assert result.heard_code is not None and int(result.heard_code, 16) >> MAC_BITS == SHORT_ID
    assert result.heard_code in {to_hex(current), heard.code}  # same or the next slot's code
