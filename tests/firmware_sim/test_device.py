"""The node firmware state machine against a real Mosquitto: every transition, bad input, loss."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from edge.modem import codes
from firmware_sim import device as dev
from firmware_sim import watchdog
from firmware_sim.link import parse_broker_url
from storewave import wire

from .conftest import HubSide, Mosquitto, wait_for

NODE = "store-0001-n1"
KEY = bytes(range(32))
pytestmark = pytest.mark.mosquitto


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def config(version: int, **emit: object) -> wire.NodeConfig:
    """A config with a beacon key, emitting every second."""
    return wire.NodeConfig(
        version=version,
        emit=wire.EmitSchedule(period_s=1.0, **emit),
        beacon=wire.BeaconKey(short_id=42, key_hex=KEY.hex(), slot_s=30),
        thresholds=wire.DetectorThresholds(debounce_s=0.0),
        telemetry_period_s=5.0,
    )


def make(
    broker: Mosquitto, clock: FakeClock, storage: dev.NodeStorage | None = None, **kwargs: object
) -> dev.Device:
    """A device with fixed credentials."""
    return dev.Device(
        lambda: dev.Credentials(NODE, "pw"),
        parse_broker_url(broker.url),
        storage or dev.NodeStorage(),
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


def run_until(device: dev.Device, condition, what: str, timeout_s: float = 10.0):  # type: ignore[no-untyped-def]
    """Tick the device until ``condition()`` holds (bounded in real time)."""

    def step():  # type: ignore[no-untyped-def]
        device.tick()
        return condition()

    return wait_for(step, timeout_s, what)


def topic(leaf: str) -> str:
    return f"sw/v1/nodes/{NODE}/{leaf}"


def test_boot_provision_config_emit_heartbeat(broker: Mosquitto, hub_side: HubSide) -> None:
    hub_side.publish(topic("config"), config(1).to_bytes(), retain=True)
    clock = FakeClock()
    node = make(broker, clock, noise_floor=lambda: -71.04)
    run_until(node, lambda: node.state is dev.State.RUNNING, "running")
    states = [to for _, to, _ in node.transitions]
    assert states[:4] == [
        dev.State.PROVISION,
        dev.State.CONNECT,
        dev.State.AWAIT_CONFIG,
        dev.State.RUNNING,
    ]
    assert node.storage.boot == 1
    for _ in range(3):
        clock.t += 1.0
        node.tick()
    assert len(node.emitted) >= 3
    now_slot = codes.slot_of(datetime.now(UTC).timestamp())
    assert codes.verify_beacon_code(node.emitted[-1][1], KEY, now_slot) is not None
    clock.t += 5.0
    run_until(node, lambda: hub_side.of_type("telemetry"), "telemetry")
    assert hub_side.of_type("telemetry")[-1]["body"]["noise_floor_dbfs"] == -71.0
    run_until(node, lambda: not node.storage.outbox, "acks to empty the outbox")
    assert {"state": "online", "boot": 1} in hub_side.statuses(NODE)
    node.stop()
    wait_for(lambda: {"state": "offline", "boot": 1} in hub_side.statuses(NODE), 5, "offline")


def test_missing_config_runs_safe_then_applies_late_config(
    broker: Mosquitto, hub_side: HubSide
) -> None:
    clock = FakeClock()
    node = make(broker, clock)
    run_until(node, lambda: node.state is dev.State.AWAIT_CONFIG, "await config")
    clock.t += dev.CONFIG_WAIT_S
    node.tick()
    assert node.state is dev.State.RUNNING and node.config is None
    clock.t += 2.0
    node.tick()
    assert node.emitted == []  # no key: nothing legitimate to emit
    hub_side.publish(topic("config"), config(3).to_bytes(), retain=True)
    run_until(node, lambda: node.config is not None, "late config")
    assert node.config is not None and node.config.version == 3
    node.stop()


def test_emits_on_its_turn_of_the_store_cycle(broker: Mosquitto, hub_side: HubSide) -> None:
    """The hub's offset is honoured: frames start at wall times k * period + offset."""
    turn = wire.EmitSchedule.time_shared(1, 2)  # the second of a store's two beacons
    hub_side.publish(
        topic("config"), config(2).model_copy(update={"emit": turn}).to_bytes(), retain=True
    )
    clock = FakeClock()
    wall_offset = 1_790_000_000.123 - clock.t  # the wall clock runs with the monotonic one
    node = make(broker, clock, wall=lambda: clock.t + wall_offset)
    run_until(node, lambda: node.state is dev.State.RUNNING, "running")
    step = 0.01
    for _ in range(int(6 * turn.period_s / step)):
        clock.t += step
        node.tick()
    walls = [at + wall_offset for at, _, _ in node.emitted]
    assert len(walls) >= 5
    turns = [round((w - turn.offset_s) / turn.period_s) for w in walls]
    assert turns == list(range(turns[0], turns[0] + len(turns)))  # every turn, once
    for w, k in zip(walls, turns, strict=True):
        assert 0.0 <= w - (k * turn.period_s + turn.offset_s) < step + 1e-6
    node.stop()


def test_bad_and_stale_configs_are_rejected_and_old_one_kept(
    broker: Mosquitto, hub_side: HubSide
) -> None:
    hub_side.publish(topic("config"), config(2).to_bytes(), retain=True)
    clock = FakeClock()
    node = make(broker, clock)
    run_until(node, lambda: node.state is dev.State.RUNNING, "running")
    hub_side.publish(topic("config"), b'{"version": 5, "emit": {"level_dbfs": 30}}')
    hub_side.publish(topic("config"), b"not json at all")
    hub_side.publish(topic("config"), config(1).to_bytes())
    rejected = run_until(
        node, lambda: len(hub_side.of_type("config_rejected")) == 3, "3 rejections"
    )
    bodies = [e["body"] for e in hub_side.of_type("config_rejected")]
    assert [b["version"] for b in bodies] == [5, 0, 1]
    assert all(b["kept_version"] == 2 for b in bodies)
    assert "older" in bodies[2]["reason"]
    assert rejected and node.config is not None and node.config.version == 2
    node.stop()


def test_broker_loss_queues_events_and_delivers_them_after_reconnect(
    broker: Mosquitto, hub_side: HubSide
) -> None:
    heard: list[dev.Heard] = []

    def listener() -> list[dev.Heard]:
        out = list(heard)
        heard.clear()
        return out

    hub_side.publish(topic("config"), config(1).to_bytes(), retain=True)
    clock = FakeClock()
    node = make(broker, clock, listener=listener)
    run_until(node, lambda: node.state is dev.State.RUNNING, "running")
    broker.stop()
    run_until(node, lambda: node.state is dev.State.OFFLINE, "offline after broker loss")
    token = codes.new_phone_token()
    for i in range(5):
        heard.append(dev.Heard(token ^ i, 12.0, 0.9))
        clock.t += 1.0
        node.tick()
    assert len(node.emitted) >= 5  # beacons keep playing without the network
    assert len(node.storage.outbox) >= 5
    broker.start()
    hub_side.close()
    late_hub = HubSide(broker.port, auto_ack=True)
    try:
        run_until(node, lambda: node.state is dev.State.RUNNING, "reconnected", 20.0)
        run_until(node, lambda: not node.storage.outbox, "queued events acked", 20.0)
        detections = late_hub.of_type("detection")
        assert {d["body"]["code"] for d in detections} >= {
            codes.to_hex(token ^ i) for i in range(5)
        }
        assert all(d["boot"] == 1 for d in detections)
    finally:
        late_hub.close()
        node.stop()


def test_provisioning_failure_is_retried(broker: Mosquitto) -> None:
    attempts: list[int] = []

    def provision() -> dev.Credentials:
        attempts.append(1)
        if len(attempts) < 2:
            raise dev.ProvisionError("no credentials yet")
        return dev.Credentials(NODE, "pw")

    clock = FakeClock()
    node = dev.Device(provision, parse_broker_url(broker.url), dev.NodeStorage(), clock=clock)
    node.tick()
    node.tick()
    assert node.state is dev.State.PROVISION and len(attempts) == 1
    clock.t += dev.PROVISION_RETRY_S
    node.tick()
    assert node.state is dev.State.CONNECT
    node.stop()


def test_watchdog_restarts_on_fault_and_stall_with_a_new_boot(
    broker: Mosquitto, hub_side: HubSide
) -> None:
    mode = {"fail": False, "stall": False}

    def listener() -> list[dev.Heard] | None:
        if mode["fail"]:
            raise RuntimeError("DMA error")
        return None if mode["stall"] else []

    hub_side.publish(topic("config"), config(1).to_bytes(), retain=True)
    clock = FakeClock()
    storage = dev.NodeStorage()
    sup = watchdog.Supervisor(lambda st: make(broker, clock, st, listener=listener), storage, clock)
    wait_for(lambda: (sup.tick(), sup.device.state is dev.State.RUNNING)[1], 10, "running")
    mode["fail"] = True
    sup.tick()
    assert sup.restarts and "DMA error" in sup.restarts[0]
    sup.tick()  # the new instance boots
    assert storage.boot == 2
    wait_for(lambda: {"state": "lost", "boot": 1} in hub_side.statuses(NODE), 10, "last will")
    mode["fail"] = False
    mode["stall"] = True
    wait_for(lambda: (sup.tick(), sup.device.state is dev.State.RUNNING)[1], 10, "running again")
    clock.t += watchdog.WATCHDOG_TIMEOUT_S + 1
    sup.tick()
    assert "stalled" in sup.restarts[-1]
    sup.tick()
    assert storage.boot == 3 and len(sup.restarts) == 2
    sup.stop()


def test_commands_emit_now_self_test_and_expiry(broker: Mosquitto, hub_side: HubSide) -> None:
    hub_side.publish(topic("config"), config(1).to_bytes(), retain=True)
    clock = FakeClock()
    node = make(broker, clock)
    run_until(node, lambda: node.state is dev.State.RUNNING, "running")
    later = datetime.now(UTC) + timedelta(minutes=1)
    earlier = datetime.now(UTC) - timedelta(minutes=1)
    for name, expires in (("emit_now", later), ("self_test", later), ("emit_now", earlier)):
        cmd = wire.NodeCommand(cmd=wire.CommandName(name), expires_at=expires)
        hub_side.publish(topic("cmd"), cmd.to_bytes())
    results = run_until(node, lambda: len(hub_side.of_type("command_result")) == 3, "3 results")
    assert results
    oks = [(r["body"]["ok"], r["body"]["detail"]) for r in hub_side.of_type("command_result")]
    assert oks[0] == (True, "emitted")
    assert oks[1][0] is False  # no audio path wired in: the self-test says so
    assert oks[2] == (False, "expired")
    assert hub_side.of_type("self_test")[0]["body"]["ok"] is False
    seqs = [json.loads(p)["seq"] for t, p in hub_side.seen if t.endswith("/events")]
    assert seqs == sorted(set(seqs))  # no duplicates, in order
    node.stop()


def test_self_test_plays_and_hears_its_own_frame_through_the_room(
    broker: Mosquitto, hub_side: HubSide
) -> None:
    from firmware_sim.acoustics import Room
    from firmware_sim.selftest import AcousticSelfTester

    tester = AcousticSelfTester(Room(), position=(5.0, 5.0, 2.5), seed=3)
    hub_side.publish(topic("config"), config(1, level_dbfs=-40.0).to_bytes(), retain=True)
    clock = FakeClock()
    node = make(broker, clock, self_tester=tester)
    run_until(node, lambda: node.state is dev.State.RUNNING, "running")
    expires = datetime.now(UTC) + timedelta(minutes=1)
    cmd = wire.NodeCommand(cmd=wire.CommandName.SELF_TEST, expires_at=expires)
    hub_side.publish(topic("cmd"), cmd.to_bytes())
    run_until(node, lambda: hub_side.of_type("self_test"), "self-test event")
    body = hub_side.of_type("self_test")[0]["body"]
    assert body["ok"] is True
    now_slot = codes.slot_of(datetime.now(UTC).timestamp())
    assert codes.verify_beacon_code(codes.from_hex(body["heard_code"]), KEY, now_slot) is not None
    # -40 dBFS at the emitter, 100 dB SPL full scale, 0.3 m away, 120 dB SPL mic full
    # scale, reference mic -4 dB at 19 kHz: about -40 - 20 + 10.5 - 4 = -53.5 dBFS.
    assert body["level_dbfs"] == pytest.approx(-53.5, abs=3.0)
    assert body["snr_db"] > 10.0
    node.stop()
