"""A complete hub (broker, ingest, timers, HTTP API) inside this process, on a free port.

Used by ``storewave demo``, the end-to-end tests and the kiosk tests: the same code as
``storewave hub serve``, with uvicorn on a background thread and an injectable clock.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import Engine

from hub.app import create_app
from hub.clock import Clock, SystemClock
from hub.db import session_scope
from hub.models.auth import ApiKeyCreate, Role
from hub.runtime import HubRuntime
from hub.security import HubCrypto, resolve_secret
from hub.seed import SeedSummary, load_seeds
from hub.services.auth import create_api_key
from storewave.settings import HubSettings

log = logging.getLogger(__name__)

# uvicorn binds within a second on an idle machine; a loaded CI box gets more slack.
STARTUP_TIMEOUT_S = 60.0
SHUTDOWN_TIMEOUT_S = 15.0


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedHub:
    """A running hub; ``url`` is its HTTP base URL, ``admin_key`` an admin API key."""

    settings: HubSettings
    runtime: HubRuntime
    server: uvicorn.Server
    thread: threading.Thread
    clock: Clock
    crypto: HubCrypto
    admin_key: str
    seeds: SeedSummary = field(default_factory=SeedSummary)

    @property
    def url(self) -> str:
        """HTTP base URL of the API."""
        return f"http://{self.settings.host}:{self.settings.port}"

    @property
    def engine(self) -> Engine:
        """The hub's database engine."""
        assert self.runtime.engine is not None
        return self.runtime.engine

    def client(self, key: str | None = None, timeout_s: float = 30.0) -> httpx.Client:
        """An HTTP client for the API, authenticated with ``key`` (default: the admin key)."""
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key or self.admin_key}"},
            timeout=timeout_s,
        )

    def api_key(self, role: Role, *, store_id: str | None = None,
                region_id: str | None = None, name: str = "embedded") -> str:
        """Create an API key for ``role`` (scoped to a store or region) and return it."""
        with session_scope(self.engine) as session:
            _, key = create_api_key(
                session,
                self.crypto,
                self.clock,
                ApiKeyCreate(name=name, role=role.value, store_id=store_id, region_id=region_id),
            )
        return key

    def stop(self) -> None:
        """Stop the API, then the runtime (ingest drains, broker stops)."""
        self.server.should_exit = True
        self.thread.join(SHUTDOWN_TIMEOUT_S)
        self.runtime.stop()


def start_embedded_hub(
    data_dir: Path,
    *,
    clock: Clock | None = None,
    broker: str = "auto",
    database_url: str = "",
    seed: bool = True,
) -> EmbeddedHub:
    """Start a hub on a free port with its state in ``data_dir``; seed it if asked."""
    clock = clock or SystemClock()
    settings = HubSettings.load(
        data_dir=data_dir, port=free_port(), broker=broker, database_url=database_url
    )
    runtime = HubRuntime(settings, broker, clock=clock).start()
    try:
        assert runtime.engine is not None
        app = create_app(settings, clock=clock, node_control=runtime.control, engine=runtime.engine)
        crypto = HubCrypto(resolve_secret(settings))
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_config=None, access_log=False
        )
        server = uvicorn.Server(config)
        # Signals belong to the program that embeds the hub, not to a library thread.
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        thread = threading.Thread(target=server.run, name="hub-http", daemon=True)
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the embedded hub's HTTP server did not start")
            time.sleep(0.05)
        hub = EmbeddedHub(settings, runtime, server, thread, clock, crypto, admin_key="")
        hub.admin_key = hub.api_key(Role.ADMIN, name="embedded-admin")
        if seed:
            with session_scope(runtime.engine) as session:
                hub.seeds = load_seeds(
                    session, settings=settings, crypto=crypto, clock=clock,
                    node_control=runtime.control,
                )
        return hub
    except BaseException:
        runtime.stop()
        raise
