"""Run one ingest worker as its own process (``python -m hub.mqtt.worker``).

Used by the kill -9 test and the benchmark, and to run ingest on another host
(``storewave hub serve --workers N`` runs its N clients inside the hub process).
The broker password comes from the environment (``STOREWAVE_INGEST_PASSWORD``), never
argv, which any local user can read with ``ps``. The hub settings (``--config`` or
``$STOREWAVE_CONFIG``, and the environment) are read as ``storewave hub serve`` reads
them: the campaign rules (``[hub.campaigns]``, e.g. the global daily cap) that grants
for presence events follow come from there.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import threading

from sqlalchemy import Engine

from hub.mqtt.hooks import NullHooks, default_hooks
from hub.mqtt.ingest import BATCH_MAX, IngestWorker
from hub.services.campaigns import caps as campaign_caps
from storewave.logs import setup_logging
from storewave.settings import HubSettings

PASSWORD_ENV = "STOREWAVE_INGEST_PASSWORD"
# The ingest allocates a few dozen objects per message (pydantic models, row dicts) and
# keeps thousands queued: at CPython's default gen-0 threshold (700) the cyclic GC ran
# every few dozen messages and walked every long-lived object of the process, ~10 us
# of ~50 us of CPU per event measured. After start-up the long-lived objects (modules,
# SQLAlchemy metadata, pydantic schemas) are frozen out of collection and gen 0 is
# collected every this many allocations: ~20 % less CPU per event (nothing here makes
# reference cycles in bulk, so memory does not grow).
GC_GEN0_THRESHOLD = 10_000


def tune_gc() -> None:
    """Freeze what start-up allocated and collect young objects less often (see above)."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def apply_hub_settings(engine: Engine, config: str | None) -> HubSettings:
    """Read the hub settings as ``storewave hub serve`` does and apply them to ``engine``."""
    settings: HubSettings = HubSettings.load(config)
    campaign_caps.configure(str(engine.url), settings.campaigns)
    return settings


def main(argv: list[str] | None = None) -> None:
    """Connect, ingest until SIGTERM/SIGINT, then drain and exit."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--client-id", default="storewave-hub-ingest-0")
    parser.add_argument("--mqtt3", action="store_true", help="MQTT 3.1.1 (amqtt): no shared sub")
    parser.add_argument("--no-hooks", action="store_true", help="store only (benchmark)")
    parser.add_argument("--no-hub-status", action="store_true")
    parser.add_argument("--config", default=None,
                        help="hub settings TOML (default: $STOREWAVE_CONFIG)")
    parser.add_argument("--batch-max", type=int, default=BATCH_MAX,
                        help="messages per transaction (and half the broker's in-flight window)")
    args = parser.parse_args(argv)
    setup_logging("INFO")
    from hub.db import make_engine

    engine = make_engine(args.database_url)
    apply_hub_settings(engine, args.config)
    worker = IngestWorker(
        args.host,
        args.port,
        (args.username, os.environ.get(PASSWORD_ENV, "")),
        engine,
        client_id=args.client_id,
        mqtt5=not args.mqtt3,
        hooks=NullHooks() if args.no_hooks else default_hooks(),
        publish_hub_status=not args.no_hub_status,
        batch_max=args.batch_max,
    )
    tune_gc()  # before any message arrives: only start-up objects are frozen
    worker.start()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_a: done.set())
    print("ingest-ready", flush=True)
    done.wait()
    worker.stop()


if __name__ == "__main__":
    main()
