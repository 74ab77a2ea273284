"""The edge agent: one reactor thread turning hearings, acks, configs and commands into events.

Threads: the audio source (PortAudio callback or a pacing thread) offers blocks to a
bounded BlockQueue; the detector thread feeds them to the streaming detector and posts
each decoded frame to the agent's inbox; paho's network loop (MqttLink) posts acks,
configs and commands to the same inbox; the agent thread alone touches the outbox, the
debouncer and the publisher, so none of them needs a lock.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from datetime import UTC, datetime
from typing import Any

from edge.agent.commands import CommandsMixin, SelfTest
from edge.agent.debounce import Debouncer, Hearing
from edge.agent.link import MqttLink
from edge.agent.nodeconfig import ConfigRejected, ConfigStore, validate_config
from edge.agent.outbox import EventKind, Outbox
from edge.agent.ports import Detection, Detector
from edge.agent.publisher import Publisher
from edge.agent.settings import AgentOptions
from edge.audio.blockqueue import BlockQueue
from edge.audio.emitter import Emitter
from edge.audio.sources import AudioSource
from edge.modem.codes import kind_of, to_hex
from storewave import __version__
from storewave.wire import (
    Ack,
    BeaconKey,
    ConfigRejectedBody,
    ConfigRejectedEvent,
    DetectionBody,
    DetectionEvent,
    NodeCommand,
    NodeConfig,
    NodeLeaf,
    TelemetryBody,
    TelemetryEvent,
    WireError,
    parse_message,
)

log = logging.getLogger(__name__)

# Messages handled per wake-up before timers and the publisher get a turn, so a flood
# of acks or hearings cannot starve the heartbeat.
_INBOX_BATCH = 500
# Longest the agent thread sleeps when nothing is scheduled (it wakes on any message).
_IDLE_WAIT_S = 1.0
# How long the detector thread waits for a block before checking for shutdown.
_BLOCK_WAIT_S = 0.1


class Agent(CommandsMixin):
    """One store node: wire it up, ``start()``, then ``stop()`` (edge.agent.run does both)."""

    def __init__(
        self,
        options: AgentOptions,
        source: AudioSource,
        detector: Detector,
        emitter: Emitter | None = None,
    ) -> None:
        """Open the outbox (a new boot) and prepare every part; nothing runs yet."""
        self.options = options
        self.node_id = options.node_id
        self._source = source
        self._detector = detector
        self._emitter = emitter
        options.data_dir.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(
            options.data_dir / "outbox.sqlite3", options.outbox_soft_cap, options.outbox_hard_cap
        )
        self.boot = self.outbox.boot
        self.blocks = BlockQueue(options.block_queue_len)
        self.inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.link = MqttLink(
            options.node_id,
            options.password,
            options.broker_url,
            self.boot,
            on_message=lambda leaf, payload: self.inbox.put(("mqtt", (leaf, payload))),
            on_state=lambda up: self.inbox.put(("link", up)),
            tls_ca_file=options.tls_ca_file,
        )
        self.publisher = Publisher(
            self.outbox,
            self.link,
            options.drain_rate_per_s,
            options.in_flight_window,
            options.ack_timeout_s,
        )
        self._config_store = ConfigStore(options.data_dir / "config.json")
        self.config: NodeConfig | None = self._config_store.load()
        self._debouncer = Debouncer(self._thresholds_debounce_s())
        self._started = time.monotonic()
        self._next_telemetry = self._started + self._telemetry_period_s()
        self._self_test: SelfTest | None = None
        self._stop = threading.Event()
        self._audio_done = threading.Event()
        self._threads: list[threading.Thread] = []
        self.stopped = False
        self.frames_heard = 0
        self.detector_errors = 0
        self.blocks_seen = 0
        self.input_restarts = 0
        self.noise_floor_dbfs: float | None = None
        self.rejected_configs = 0
        self._beacon_path = options.data_dir / "beacon.json"
        self._beacon_override = self._load_beacon()
        self._configure_emitter()

    # ------------------------------------------------------------ helpers

    def _load_beacon(self) -> BeaconKey | None:
        """The beacon key last given by a set_beacon command, if any."""
        try:
            return BeaconKey.model_validate_json(self._beacon_path.read_bytes())
        except (FileNotFoundError, ValueError):
            return None

    def _configure_emitter(self) -> None:
        """Give the emitter the config's schedule and key (or the set_beacon key)."""
        if self._emitter is None or self.config is None:
            return
        beacon = self.config.beacon or self._beacon_override
        self._emitter.configure(self.config.emit, beacon)

    def _thresholds_debounce_s(self) -> float:
        """The debounce window of the current config (default when none)."""
        cfg = self.config or NodeConfig(version=1)
        return cfg.thresholds.debounce_s

    def _telemetry_period_s(self) -> float:
        """The heartbeat period of the current config (default when none)."""
        cfg = self.config or NodeConfig(version=1)
        return cfg.telemetry_period_s

    @property
    def config_version(self) -> int:
        """Version of the applied config (0 before the first)."""
        return self.config.version if self.config else 0

    @property
    def audio_finished(self) -> bool:
        """A finite source (WAV, array) was fully decoded."""
        return self._audio_done.is_set()

    def _store(self, event: Any, kind: EventKind, leaf: NodeLeaf = NodeLeaf.EVENTS) -> None:
        """Write one event to the outbox (durably) and let the publisher know."""
        self.outbox.add(event.to_bytes(), kind, leaf.value)
        self.publisher.notify_added()

    def _envelope(self, cls: Any, body: Any) -> Any:
        """An event envelope; boot and seq are stamped by the outbox at first publish."""
        return cls(node=self.node_id, boot=0, seq=0, body=body)

    def post_detection(self, detection: Detection) -> None:
        """Hand a decoded frame to the agent thread (the detector thread's only output)."""
        self.inbox.put(("detection", detection))

    # ------------------------------------------------------------ detector thread

    def _detect_loop(self) -> None:
        """Feed blocks to the detector; post each decoded frame to the agent thread."""
        last_block = last_restart = time.monotonic()
        while not self._stop.is_set():
            try:
                block = self.blocks.get(timeout_s=_BLOCK_WAIT_S)
            except queue.Empty:
                now = time.monotonic()
                live = not (self._source.finished or self.stopped)
                quiet_s = min(now - last_block, now - last_restart)
                if live and quiet_s > self.options.input_stall_s:
                    last_restart = now
                    self._restart_input()
                continue
            last_block = time.monotonic()
            self.blocks_seen += 1
            if block is None:
                try:
                    tail = self._detector.flush()
                except Exception:  # same rule as feed(): log, count, keep going
                    self.detector_errors += 1
                    log.exception("detector failed at the end of the stream")
                    tail = []
                for det in tail:
                    self.post_detection(det)
                self._audio_done.set()
                self.inbox.put(("audio_end", None))
                return
            try:
                found = self._detector.feed(block)
            except Exception:  # a detector bug must not leave the node silently deaf
                self.detector_errors += 1
                log.exception("detector failed on a block; block skipped")
                continue
            for det in found:
                self.post_detection(det)
            self.noise_floor_dbfs = self._detector.noise_floor_dbfs

    def _restart_input(self) -> None:
        """A live input that stopped delivering (device unplugged, server restarted): reopen it."""
        self.input_restarts += 1
        log.error(
            "audio input stalled; reopening it",
            extra={"stall_s": self.options.input_stall_s, "restarts": self.input_restarts},
        )
        try:
            self._source.stop()
            self._source.start(self.blocks)
        except Exception:  # AudioUnavailable and PortAudio errors: try again after a stall
            log.exception("could not reopen the audio input")

    # ------------------------------------------------------------ agent thread handlers

    def _on_detection(self, det: Detection, now: float) -> None:
        """Threshold, debounce, store; complete a pending self-test."""
        self.frames_heard += 1
        if self._self_test is not None and det.payload in self._self_test.codes:
            self._finish_self_test(det)
        thresholds = (self.config or NodeConfig(version=1)).thresholds
        if det.snr_db < thresholds.min_snr_db or det.confidence < thresholds.min_confidence:
            return
        hearing = self._debouncer.hear(
            det.payload, det.snr_db, det.confidence, now, datetime.now(UTC)
        )
        if hearing is not None:
            self._store_hearing(hearing)

    def _store_hearing(self, hearing: Hearing) -> None:
        """A debounced hearing becomes a detection event in the outbox."""
        body = DetectionBody(
            code=to_hex(hearing.code),
            kind=kind_of(hearing.code),
            snr_db=min(max(hearing.snr_db, -60.0), 120.0),
            confidence=min(max(hearing.confidence, 0.0), 1.0),
            first_heard=hearing.first_heard,
            count=hearing.count,
        )
        self._store(self._envelope(DetectionEvent, body), EventKind.DETECTION)

    def _on_mqtt(self, leaf: NodeLeaf, payload: bytes) -> None:
        """Dispatch an incoming message by topic leaf; bad ones are logged, never fatal."""
        try:
            if leaf is NodeLeaf.ACK:
                ack: Ack = parse_message(Ack, payload)
                self.publisher.on_ack(ack.boot, ack.seq)
            elif leaf is NodeLeaf.CONFIG:
                self._on_config(payload)
            elif leaf is NodeLeaf.CMD:
                self._on_command(parse_message(NodeCommand, payload))
        except WireError as exc:
            log.warning(
                "ignored a malformed message", extra={"leaf": leaf.value, "why": exc.reason}
            )

    def _on_config(self, payload: bytes) -> None:
        """Validate and apply a config without restarting; report a rejection as an event."""
        try:
            config = validate_config(payload, self.config)
        except ConfigRejected as exc:
            self.rejected_configs += 1
            log.warning("config rejected", extra={"version": exc.version, "why": exc.reason})
            body = ConfigRejectedBody(
                version=exc.version, kept_version=self.config_version, reason=exc.reason
            )
            self._store(self._envelope(ConfigRejectedEvent, body), EventKind.OTHER)
            return
        if config is None:
            return
        self._config_store.save(config)
        self.config = config
        self._debouncer.window_s = config.thresholds.debounce_s
        self._next_telemetry = min(
            self._next_telemetry, time.monotonic() + config.telemetry_period_s
        )
        self._configure_emitter()
        log.info("config applied", extra={"version": config.version})

    def telemetry_body(self) -> TelemetryBody:
        """The current health counters."""
        floor = self.noise_floor_dbfs
        return TelemetryBody(
            uptime_s=round(time.monotonic() - self._started, 3),
            version=__version__,
            noise_floor_dbfs=None
            if floor is None or not math.isfinite(floor)
            else min(max(floor, -200.0), 10.0),
            frames_heard=self.frames_heard,
            queue_depth=self.outbox.depth,
            queue_dropped=self.outbox.dropped_total,
            overruns=self.blocks.overruns,
            config_version=self.config_version,
        )

    def _timers(self, now: float) -> None:
        """Heartbeat, debounce closings, self-test timeout."""
        if now >= self._next_telemetry:
            self._next_telemetry = now + self._telemetry_period_s()
            self.outbox.prune_telemetry()
            self._store(
                self._envelope(TelemetryEvent, self.telemetry_body()),
                EventKind.TELEMETRY,
                NodeLeaf.TELEMETRY,
            )
        for hearing in self._debouncer.expire(now):
            self._store_hearing(hearing)
        if self._self_test is not None:
            if now >= self._self_test.deadline:
                self._finish_self_test(None)
            else:
                self._retry_self_test(now)

    def _wait_s(self, now: float, publisher_wait: float | None) -> float:
        """How long the agent thread may sleep."""
        deadlines = [self._next_telemetry, now + _IDLE_WAIT_S]
        if (d := self._debouncer.next_deadline()) is not None:
            deadlines.append(d)
        if self._self_test is not None:
            deadlines.append(min(self._self_test.wake_at, self._self_test.deadline))
        wait = min(deadlines) - now
        if publisher_wait is not None:
            wait = min(wait, publisher_wait)
        return max(0.0, wait)

    def _handle(self, kind: str, value: Any, now: float) -> None:
        """One inbox item."""
        if kind == "detection":
            self._on_detection(value, now)
        elif kind == "mqtt":
            self._on_mqtt(*value)
        elif kind == "link" and value:
            self.publisher.on_connected()
        elif kind == "call":
            value()

    def _agent_loop(self) -> None:
        """The reactor: inbox, timers, publisher, until stopped."""
        wait = 0.0
        while not self._stop.is_set():
            try:
                kind, value = self.inbox.get(timeout=wait)
            except queue.Empty:
                pass
            else:
                self._handle(kind, value, time.monotonic())
                for _ in range(_INBOX_BATCH):
                    try:
                        kind, value = self.inbox.get_nowait()
                    except queue.Empty:
                        break
                    self._handle(kind, value, time.monotonic())
            now = time.monotonic()
            self._timers(now)
            wait = self._wait_s(now, self.publisher.step(now))

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start audio, detector, emitter, MQTT and the agent thread."""
        self._source.start(self.blocks)
        for target, name in ((self._detect_loop, "detector"), (self._agent_loop, "agent")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if self._emitter is not None:
            self._emitter.start()
        self.link.start()
        log.info("edge node started", extra={"node": self.node_id, "boot": self.boot})

    def drained(self) -> bool:
        """True when every stored event has been acknowledged."""
        return self.outbox.depth == 0

    def stop(self, flush_timeout_s: float | None = None) -> None:
        """Clean shutdown: stop listening, close debounce windows, send what acks in time."""
        if self.stopped:
            return
        self.stopped = True
        timeout = self.options.flush_timeout_s if flush_timeout_s is None else flush_timeout_s
        self._source.stop()
        if self._emitter is not None:
            self._emitter.stop()
        if self._threads:
            self._closing(time.monotonic() + timeout)
        self._stop.set()
        self.inbox.put(("wake", None))  # the agent thread may be sleeping on its inbox
        for thread in self._threads:
            thread.join(timeout=max(1.0, timeout))
        self.link.stop(clean=True)
        self.outbox.close()
        log.info("edge node stopped", extra={"node": self.node_id, "boot": self.boot})

    def _closing(self, deadline: float) -> None:
        """Ask the agent thread to flush debounce windows, then wait for acks until ``deadline``."""
        done = threading.Event()

        def close_windows() -> None:
            """On the agent thread: store the closing events, make everything due."""
            for hearing in self._debouncer.flush():
                self._store_hearing(hearing)
            self.publisher.flush()
            done.set()

        self.inbox.put(("call", close_windows))
        done.wait(max(0.0, deadline - time.monotonic()))
        while time.monotonic() < deadline and self.link.connected and not self.drained():
            self._stop.wait(0.05)  # acks arrive on the agent thread; poll the depth
