"""The firmware a store node runs, simulated: a state machine over the real MQTT contract.

boot -> provision -> connect -> await config (retained) -> running (emit rotating codes,
listen, heartbeat) <-> offline (broker lost: keep emitting, queue events) ; config
updates, self-test and commands are handled while running; a
:class:`firmware_sim.watchdog.Supervisor` restarts a node that faults or stalls, with a
new boot counter.

Time comes from an injectable monotonic ``clock`` and ``wall`` clock, so tests move
time by hand; MQTT is real (paho-mqtt 2.x). The outbox lives in :class:`NodeStorage`,
the simulated flash, so events survive a watchdog restart and are resent until acked.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from edge.modem import codes
from firmware_sim.link import BrokerAddress, Inbound, NodeLink
from firmware_sim.nodetypes import (
    Credentials,
    Emitter,
    Heard,
    Listener,
    NodeStorage,
    ProvisionError,
    SelfTester,
    SelfTestResult,
)
from storewave import wire
from storewave.wire import NodeLeaf

log = logging.getLogger(__name__)

FIRMWARE_VERSION = "sim-1.0"
# How long a node waits for its retained config before running on safe defaults
# (listening, no emission: without a beacon key it has nothing legitimate to emit).
CONFIG_WAIT_S = 10.0
# An event not acked this long after its send is sent again (the hub dedupes).
RESEND_AFTER_S = 10.0
# Provisioning retry interval after a failure (no credentials yet / server down).
PROVISION_RETRY_S = 5.0
# Telemetry period before any config arrives (DESIGN: heartbeat every 30 s).
DEFAULT_TELEMETRY_PERIOD_S = 30.0


class State(StrEnum):
    """Where the node's main loop is."""

    BOOT = "boot"
    PROVISION = "provision"
    CONNECT = "connect"
    AWAIT_CONFIG = "await_config"
    RUNNING = "running"
    OFFLINE = "offline"
    STOPPED = "stopped"


@dataclass
class _Pending:
    """When an outbox entry was last published (None: not on this connection)."""

    sent_at: float | None = None


class Device:
    """One simulated node. Call :meth:`tick` from one thread; MQTT runs on paho's."""

    def __init__(
        self,
        provision: Callable[[], Credentials],
        broker: BrokerAddress,
        storage: NodeStorage,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        listener: Listener | None = None,
        emitter: Emitter | None = None,
        self_tester: SelfTester | None = None,
        noise_floor: Callable[[], float | None] | None = None,
    ) -> None:
        """Set the node up in BOOT; nothing happens until the first ``tick``."""
        self._provision = provision
        self._broker = broker
        self.storage = storage
        self._clock = clock
        self._wall = wall
        self._listener = listener
        self._emitter = emitter
        self._self_tester = self_tester
        self._noise_floor = noise_floor
        self.state = State.BOOT
        self.transitions: list[tuple[State, State, str]] = []
        self.config: wire.NodeConfig | None = None
        self.rejected: list[str] = []
        self.emitted: list[tuple[float, int, float]] = []
        self.seq = -1
        self.link: NodeLink | None = None
        self.credentials: Credentials | None = None
        self._sent: dict[tuple[int, int], _Pending] = {}
        self._started = clock()
        self._state_since = self._started
        self._next_provision = self._started
        self._next_emit = self._started
        self._next_telemetry = self._started
        self._last_heard: dict[int, float] = {}
        self.frames_heard = 0
        self.last_progress = self._started
        self.audio_progress = self._started

    # ------------------------------------------------------------ state machine

    def _go(self, new: State, reason: str) -> None:
        """Change state and record the transition with its reason."""
        if new is not self.state:
            self.transitions.append((self.state, new, reason))
            log.info("state", extra={"from": self.state.value, "to": new.value, "why": reason})
            self.state = new
            self._state_since = self._clock()

    def tick(self) -> None:
        """One pass of the main loop: handle inbound messages and whatever timer is due."""
        now = self._clock()
        self.last_progress = now
        step = {
            State.BOOT: self._boot,
            State.PROVISION: self._try_provision,
            State.CONNECT: self._handle_inbox,
            State.AWAIT_CONFIG: self._await_config,
            State.RUNNING: self._run,
            State.OFFLINE: self._run,
            State.STOPPED: lambda now: None,
        }[self.state]
        step(now)

    def _boot(self, now: float) -> None:
        """Count a boot in flash and start a fresh sequence."""
        self.storage.boot += 1
        self.seq = -1
        self._go(State.PROVISION, f"boot {self.storage.boot}")

    def _try_provision(self, now: float) -> None:
        """Get credentials (retrying later on failure) and start connecting."""
        if now < self._next_provision:
            return
        try:
            self.credentials = self._provision()
        except ProvisionError as exc:
            self._next_provision = now + PROVISION_RETRY_S
            log.warning("provisioning failed, will retry", extra={"why": str(exc)})
            return
        self.link = NodeLink(
            self.credentials.node_id, self.credentials.password, self._broker, self.storage.boot
        )
        self.link.start()
        self._go(State.CONNECT, "provisioned")

    def _await_config(self, now: float) -> None:
        """Wait for the retained config; fall back to safe defaults after CONFIG_WAIT_S."""
        self._handle_inbox(now)
        if self.state is State.AWAIT_CONFIG and now - self._state_since >= CONFIG_WAIT_S:
            self._go(State.RUNNING, "no config: safe defaults (listen only)")
        if self.state is State.AWAIT_CONFIG:
            self._listen(now)
            self._resend_due(now)

    def _run(self, now: float) -> None:
        """One running pass: messages, emission, listening, telemetry, resends."""
        self._handle_inbox(now)
        if self.state not in (State.RUNNING, State.OFFLINE):
            return
        self._emit_if_due(now)
        self._listen(now)
        self._telemetry_if_due(now)
        self._resend_due(now)

    # ------------------------------------------------------------ inbound

    def _handle_inbox(self, now: float) -> None:
        """Handle everything paho's thread queued since the last tick."""
        if self.link is None:
            return
        while not self.link.inbox.empty():
            self._on_inbound(self.link.inbox.get_nowait(), now)

    def _on_inbound(self, msg: Inbound, now: float) -> None:
        """Dispatch one inbound message or connection change."""
        if msg.leaf is None:
            self._on_connection(msg.connected)
        elif msg.leaf is NodeLeaf.CONFIG:
            self._on_config(msg.payload)
        elif msg.leaf is NodeLeaf.ACK:
            self._on_ack(msg.payload)
        elif msg.leaf is NodeLeaf.CMD:
            self._on_command(msg.payload, now)

    def _on_connection(self, connected: bool) -> None:
        """Broker gained or lost: resend everything unacked, or go offline."""
        if connected:
            self._sent.clear()  # everything unacked goes out again on this connection
            if self.state in (State.CONNECT, State.OFFLINE):
                target = State.RUNNING if self.config else State.AWAIT_CONFIG
                self._go(target, "connected")
        elif self.state in (State.RUNNING, State.AWAIT_CONFIG):
            self._go(State.OFFLINE, "broker lost")

    def _on_config(self, payload: bytes) -> None:
        """Apply a newer config; reject malformed or older ones (keeping ours)."""
        try:
            config: wire.NodeConfig = wire.parse_message(wire.NodeConfig, payload)
        except wire.WireError as exc:
            self._reject(_version_hint(payload), exc.reason)
            return
        current = self.config.version if self.config else 0
        if config.version == current:
            return  # the same retained config again (reconnect): nothing to do
        if config.version < current:
            self._reject(config.version, f"version {config.version} is older than {current}")
            return
        self.config = config
        self._next_emit = self._clock() + self._until_turn(config.emit, self._wall())
        self._go(State.RUNNING, f"config v{config.version}")
        self.transitions.append((self.state, self.state, f"applied config v{config.version}"))

    def _reject(self, version: int, reason: str) -> None:
        """Report a refused config to the hub."""
        kept = self.config.version if self.config else 0
        self.rejected.append(reason)
        body = wire.ConfigRejectedBody(version=version, kept_version=kept, reason=reason[:500])
        self._event(wire.ConfigRejectedEvent, body)

    def _on_ack(self, payload: bytes) -> None:
        """Free every outbox entry of the acked boot up to the acked seq."""
        try:
            ack: wire.Ack = wire.parse_message(wire.Ack, payload)
        except wire.WireError as exc:
            log.warning("bad ack ignored", extra={"why": exc.reason})
            return
        for key in [k for k in self.storage.outbox if k[0] == ack.boot and k[1] <= ack.seq]:
            del self.storage.outbox[key]
            self._sent.pop(key, None)

    def _on_command(self, payload: bytes, now: float) -> None:
        """Run a hub command unless it has expired; report the outcome."""
        try:
            cmd: wire.NodeCommand = wire.parse_message(wire.NodeCommand, payload)
        except wire.WireError as exc:
            log.warning("bad command ignored", extra={"why": exc.reason})
            return
        if cmd.expires_at.timestamp() < self._wall():
            self._result(cmd, False, "expired")
            return
        if cmd.cmd is wire.CommandName.SELF_TEST:
            self._result(cmd, *self.self_test())
        elif cmd.cmd is wire.CommandName.EMIT_NOW:
            ok = self._emit(now)
            self._result(cmd, ok, "emitted" if ok else "no beacon key or emission disabled")
        elif cmd.cmd is wire.CommandName.FLUSH_QUEUE:
            self._sent.clear()
            self._result(cmd, True, f"{len(self.storage.outbox)} events resent")
        elif cmd.cmd is wire.CommandName.SET_BEACON:
            self._result(cmd, *self._set_beacon(cmd.args))

    def _set_beacon(self, args: dict[str, Any]) -> tuple[bool, str]:
        """Install a beacon key sent by command (amqtt: not in the retained config)."""
        if self.config is None:
            return False, "no config to attach a beacon key to"
        try:
            beacon = wire.BeaconKey.model_validate(args.get("beacon"))
        except ValueError:
            return False, "args.beacon is not a valid beacon key"
        self.config = self.config.model_copy(update={"beacon": beacon})
        return True, f"beacon {beacon.short_id} set"

    def _result(self, cmd: wire.NodeCommand, ok: bool, detail: str) -> None:
        """Report a command's outcome to the hub."""
        body = wire.CommandResultBody(command_id=cmd.id, ok=ok, detail=detail[:500])
        self._event(wire.CommandResultEvent, body)

    # ------------------------------------------------------------ behaviour

    def current_code(self) -> int | None:
        """The rotating code this node plays now, or None without a beacon key."""
        if self.config is None or self.config.beacon is None:
            return None
        beacon = self.config.beacon
        key = bytes.fromhex(beacon.key_hex)
        return codes.beacon_code(beacon.short_id, key, codes.slot_of(self._wall(), beacon.slot_s))

    def _emit(self, now: float) -> bool:
        """Play the current rotating code once; False without a key or when disabled."""
        code = self.current_code()
        if code is None or self.config is None or not self.config.emit.enabled:
            return False
        level = self.config.emit.level_dbfs
        if self._emitter is not None:
            self._emitter(code, level)
        self.emitted.append((now, code, level))
        return True

    def _emit_if_due(self, now: float) -> None:
        """Emit when the schedule says so: on its turn of the wall-clock cycle."""
        if self.config is None or now < self._next_emit:
            return
        self._emit(now)
        period = self.config.emit.period_s
        # Turns stay on the grid anchored when the config was applied; a node that fell
        # behind (a stalled loop) skips the turns it missed rather than play off its turn.
        self._next_emit += period
        if self._next_emit <= now:
            self._next_emit += math.ceil((now - self._next_emit) / period) * period

    @staticmethod
    def _until_turn(emit: wire.EmitSchedule, wall_s: float) -> float:
        """Seconds from ``wall_s`` to this node's next frame start (``k*period + offset``).

        The phase is read from the wall clock (shared by the store's nodes, NTP) once per
        config; turns then follow the monotonic clock, which never jumps.
        """
        return emit.next_start(wall_s) - wall_s

    def _listen(self, now: float) -> None:
        """Turn what the detector heard into debounced detection events."""
        if self._listener is None:
            self.audio_progress = now
            return
        heard = self._listener()
        if heard is None:
            return
        self.audio_progress = now
        debounce = self.config.thresholds.debounce_s if self.config else 0.0
        for item in heard:
            self.frames_heard += 1
            if now - self._last_heard.get(item.code, -1e18) < debounce:
                continue
            self._last_heard[item.code] = now
            body = wire.DetectionBody(
                code=codes.to_hex(item.code),
                kind=codes.kind_of(item.code),
                snr_db=max(-60.0, min(120.0, item.snr_db)),
                confidence=max(0.0, min(1.0, item.confidence)),
                first_heard=self._utc(),
            )
            self._event(wire.DetectionEvent, body)

    def self_test(self) -> tuple[bool, str]:
        """Emit and listen to ourselves; publish the measured level as a self-test event."""
        code = self.current_code()
        if self._self_tester is None or code is None or self.config is None:
            body = wire.SelfTestBody(ok=False, detail="no beacon key or no audio path to test")
        else:
            r = self._self_tester(code, self.config.emit.level_dbfs)
            body = wire.SelfTestBody(
                ok=r.ok,
                heard_code=codes.to_hex(r.heard_code) if r.heard_code is not None else None,
                level_dbfs=r.level_dbfs,
                snr_db=r.snr_db,
                detail=r.detail[:500],
            )
        self.transitions.append((self.state, self.state, f"self-test ok={body.ok}"))
        self._event(wire.SelfTestEvent, body)
        return body.ok, body.detail or "heard itself"

    def _telemetry_if_due(self, now: float) -> None:
        """Publish the heartbeat when its period has passed."""
        if now < self._next_telemetry:
            return
        period = self.config.telemetry_period_s if self.config else DEFAULT_TELEMETRY_PERIOD_S
        self._next_telemetry = now + period
        body = wire.TelemetryBody(
            uptime_s=now - self._started,
            version=FIRMWARE_VERSION,
            frames_heard=self.frames_heard,
            queue_depth=len(self.storage.outbox),
            config_version=self.config.version if self.config else 0,
            noise_floor_dbfs=self._floor(),
        )
        self._event(wire.TelemetryEvent, body, NodeLeaf.TELEMETRY)

    def _floor(self) -> float | None:
        """The detector's in-band noise floor for telemetry (None before any audio)."""
        value = self._noise_floor() if self._noise_floor is not None else None
        if value is None or not -200.0 <= value <= 10.0:  # -inf before the first block
            return None
        return round(value, 1)

    # ------------------------------------------------------------ outbox

    def _utc(self) -> datetime:
        """The wall clock as an aware UTC datetime."""
        return datetime.fromtimestamp(self._wall(), UTC)

    def _event(self, model: Any, body: Any, leaf: NodeLeaf = NodeLeaf.EVENTS) -> None:
        """Sequence an event, keep it in flash until acked, send it if we can."""
        assert self.credentials is not None
        self.seq += 1
        envelope = model(
            node=self.credentials.node_id,
            boot=self.storage.boot,
            seq=self.seq,
            ts=self._utc(),
            body=body,
        )
        key = (self.storage.boot, self.seq)
        self.storage.outbox[key] = (leaf, envelope.to_bytes())
        self._send(key, self._clock())

    def _send(self, key: tuple[int, int], now: float) -> None:
        """Publish one outbox entry if the link is up (QoS 0 for telemetry)."""
        leaf, payload = self.storage.outbox[key]
        qos = 0 if leaf is NodeLeaf.TELEMETRY else 1
        if self.link is not None and self.link.publish(leaf, payload, qos):
            self._sent[key] = _Pending(now)

    def _resend_due(self, now: float) -> None:
        """Publish entries never sent on this connection or unacked for too long."""
        if self.link is None or not self.link.connected:
            return
        for key in sorted(self.storage.outbox):
            pending = self._sent.get(key)
            if pending is None or (
                pending.sent_at is not None and now - pending.sent_at > RESEND_AFTER_S
            ):
                self._send(key, now)

    def stop(self, clean: bool = True) -> None:
        """Shut down; ``clean=False`` is a crash (the broker publishes the Last Will)."""
        if self.link is not None:
            self.link.stop(clean=clean)
        self._go(State.STOPPED, "stopped" if clean else "crashed")


__all__ = [
    "Credentials",
    "Device",
    "Emitter",
    "Heard",
    "Listener",
    "NodeStorage",
    "ProvisionError",
    "SelfTestResult",
    "SelfTester",
    "State",
]


def _version_hint(payload: bytes) -> int:
    """The ``version`` a malformed config claims, when readable (for the rejection event)."""
    import json

    try:
        value = json.loads(payload).get("version", 0)
    except (ValueError, AttributeError):
        return 0
    return value if isinstance(value, int) and value >= 0 else 0
