"""``storewave hub serve``: migrate, start broker, ingest and silent-node sweep, run the API.

Shutdown (SIGTERM/SIGINT, handled by uvicorn) runs in reverse: the API stops, ingest
drains and acks what it received, the hub status goes offline, the broker stops.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from hub.clock import Clock, SystemClock
from hub.db import WalCheckpointer
from hub.mqtt.broker import Broker, start_broker
from hub.mqtt.control import MqttNodeControl
from hub.mqtt.ingest import IngestWorker
from hub.services.outbox import OutboxRunner
from hub.services.timers import TimerRunner
from storewave.settings import HubSettings

log = logging.getLogger(__name__)

# Nodes send telemetry every 30 s (wire default): three missed heartbeats plus slack
# mean the node is gone, even if its Last Will never came (half-open sockets).
HEARTBEAT_S = 30.0
MAX_SILENCE_S = 3 * HEARTBEAT_S + 5.0
# Check for silent nodes twice per heartbeat period.
SWEEP_INTERVAL_S = HEARTBEAT_S / 2
INGEST_CLIENT_ID = "storewave-hub-ingest-{}"


@dataclass
class HubRuntime:
    """Everything the hub runs besides the HTTP server, started and stopped together."""

    settings: HubSettings
    broker_mode: str = "auto"
    workers: int = 1
    engine: Engine | None = None
    broker: Broker | None = None
    control: MqttNodeControl | None = None
    ingest: list[IngestWorker] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _sweeper: threading.Thread | None = None
    timers: TimerRunner | None = None
    outbox: OutboxRunner | None = None
    # The clock timers run on: the system clock in production, a ManualClock when a
    # demo or test moves time (an ARC trial month in seconds).
    clock: Clock | None = None
    checkpointer: WalCheckpointer | None = None

    def start(self) -> HubRuntime:
        """Migrate, start the broker, node control, ingest workers and the sweep."""
        from hub.db import make_engine, migrate

        self.engine = make_engine(self.settings.effective_database_url)
        migrate(self.engine)
        # SQLite: WAL checkpoints in a thread of their own, not inside a request's commit.
        self.checkpointer = WalCheckpointer(self.engine).start()
        self.broker = start_broker(self.broker_mode, self.settings.data_dir)
        try:
            self.control = MqttNodeControl(self.broker).start()
            workers = self.workers if self.broker.supports_mqtt5 else 1
            if workers != self.workers:
                log.warning("broker has no shared subscriptions: running one ingest worker")
            for index in range(workers):
                self.ingest.append(
                    IngestWorker(
                        self.broker.host,
                        self.broker.port,
                        self.broker.hub_credentials,
                        self.engine,
                        client_id=INGEST_CLIENT_ID.format(index),
                        mqtt5=self.broker.supports_mqtt5,
                        publish_hub_status=index == 0,
                        clock=(self.clock or SystemClock()).now,
                    ).start()
                )
        except BaseException:
            self.stop()
            raise
        self._sweeper = threading.Thread(target=self._sweep, name="silent-node-sweep", daemon=True)
        self._sweeper.start()
        # Durable timers (coupon expiry, order SLAs, journey steps): handlers register
        # when their service modules are imported, which create_app does.
        self.timers = TimerRunner(self.engine, self.clock or SystemClock())
        self.timers.start()
        # Messages to customers and staff: sent once, consent checked at send time. The
        # sender is the one ``[hub] outbox_sender`` names: log (what would go out, no PII)
        # or webhook (POST to the gateway at ``outbox_webhook_url``).
        from hub.security import HubCrypto, resolve_secret
        from hub.services.outbox import OutboxRunner, make_sender

        self.outbox = OutboxRunner(
            self.engine, HubCrypto(resolve_secret(self.settings)),
            make_sender(self.settings.outbox_sender, self.settings.outbox_webhook_url),
            self.clock or SystemClock(),
        )
        self.outbox.start()
        log.info("hub runtime started", extra={"broker": self.broker.url, "workers": workers})
        return self

    def _sweep(self) -> None:
        """Every SWEEP_INTERVAL_S, mark nodes silent past MAX_SILENCE_S offline (and alert)."""
        from hub.db import session_scope
        from hub.services.node_events import mark_silent_nodes

        clock = self.clock or SystemClock()  # the same time line as ingest and timers
        while not self._stop.wait(SWEEP_INTERVAL_S):
            try:
                assert self.engine is not None
                with session_scope(self.engine) as session:
                    silent = mark_silent_nodes(session, clock.now(), MAX_SILENCE_S)
                if silent:
                    log.warning("nodes went silent", extra={"count": len(silent)})
            except Exception:
                log.exception("silent-node sweep failed; will retry")

    def stop(self) -> None:
        """Drain and stop ingest, then node control, then the broker."""
        self._stop.set()
        parts: list[tuple[str, Any]] = []
        if self.timers is not None:
            parts.append(("timers", self.timers.stop))
        if self.outbox is not None:
            parts.append(("outbox", self.outbox.stop))
        parts += [("ingest", worker.stop) for worker in self.ingest]
        if self.control is not None:
            parts.append(("node control", self.control.stop))
        if self.broker is not None:
            parts.append(("broker", self.broker.stop))
        if self.checkpointer is not None:
            parts.append(("WAL checkpoint", self.checkpointer.stop))
        for name, stop in parts:  # one part failing to stop must not leave the broker up
            try:
                stop()
            except Exception:
                log.exception("stopping %s failed", name)
        self.ingest.clear()
        if self._sweeper is not None:
            self._sweeper.join(SWEEP_INTERVAL_S)
        log.info("hub runtime stopped")


def serve(settings: HubSettings, broker_mode: str | None = None, workers: int = 1) -> None:
    """Run the hub until SIGTERM/SIGINT: runtime first, then uvicorn on the app."""
    import uvicorn

    from hub.app import create_app

    runtime = HubRuntime(settings, broker_mode or settings.broker, workers).start()
    try:
        app = create_app(settings, node_control=runtime.control, engine=runtime.engine)
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_config=None, access_log=False
        )
        # uvicorn handles SIGTERM/SIGINT itself, then re-raises the signal to whatever
        # handler was installed before it; with Python's defaults that would kill the
        # process before the runtime drains, so a no-op handler takes the re-raise.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _after_uvicorn)
        uvicorn.Server(config).run()
    finally:
        runtime.stop()


def _after_uvicorn(signum: int, _frame: object) -> None:
    """Receives the signal uvicorn re-raises after its own shutdown; the runtime stops next."""
    log.info("hub shutting down", extra={"signal": signal.Signals(signum).name})
