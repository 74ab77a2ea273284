"""``storewave hub``: serve, migrate, seed, create-admin-key."""

from __future__ import annotations

from pathlib import Path

import typer

from storewave.settings import HubSettings

hub_app = typer.Typer(help="The hub: API server, broker, ingest.", no_args_is_help=True,
                      add_completion=False)

_CONFIG = typer.Option(None, "--config", help="TOML settings file (else $STOREWAVE_CONFIG).")


def _settings(config: Path | None) -> HubSettings:
    """Hub settings and logging set up from ``config``/environment."""
    from storewave.logs import setup_logging
    from storewave.settings import LogSettings

    log_settings = LogSettings.load(config)
    setup_logging(log_settings.level, log_settings.format)
    settings: HubSettings = HubSettings.load(config)
    return settings


@hub_app.command("serve")
def serve_command(
    config: Path | None = _CONFIG,
    broker: str | None = typer.Option(
        None, "--broker", help="auto | mosquitto | amqtt | mqtt://host:port (default: settings)"
    ),
    workers: int = typer.Option(1, "--workers", min=1, max=16, help="Ingest workers (MQTT 5)."),
) -> None:
    """Run the hub: migrations, managed broker, MQTT ingest and the HTTP API."""
    from hub.runtime import serve

    serve(_settings(config), broker, workers)


@hub_app.command("migrate")
def migrate_command(config: Path | None = _CONFIG) -> None:
    """Bring the database to the newest schema (every Alembic branch)."""
    from hub.db import make_engine, migrate

    settings = _settings(config)
    migrate(make_engine(settings.effective_database_url))
    typer.echo("database migrated")


@hub_app.command("seed")
def seed_command(
    config: Path | None = _CONFIG,
    path: Path | None = typer.Option(None, "--path", help="Seed directory (default: seeds/)."),
) -> None:
    """Load the demo seeds; node accounts go into the managed broker's password files."""
    from hub.db import make_engine, migrate, session_scope
    from hub.mqtt.control import OfflineNodeControl
    from hub.seed import load_seeds

    settings = _settings(config)
    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    control = OfflineNodeControl(settings.data_dir)
    with session_scope(engine) as session:
        summary = load_seeds(session, path, settings=settings, node_control=control)
    typer.echo(
        f"seeded: {summary.regions} regions, {summary.stores} stores, {summary.zones} zones, "
        f"{summary.nodes} nodes, {summary.beacons} beacons ({summary.skipped} already there)"
    )


@hub_app.command("create-admin-key")
def create_admin_key_command(
    config: Path | None = _CONFIG,
    name: str = typer.Option("admin", "--name", help="A label for the key."),
) -> None:
    """Create an admin API key and print it once (only its hash is stored)."""
    from hub.clock import SystemClock
    from hub.db import make_engine, migrate, session_scope
    from hub.models.auth import ApiKeyCreate, Role
    from hub.security import HubCrypto, resolve_secret
    from hub.services.auth import create_api_key

    settings = _settings(config)
    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    crypto = HubCrypto(resolve_secret(settings))
    with session_scope(engine) as session:
        spec = ApiKeyCreate(name=name, role=Role.ADMIN)
        row, key = create_api_key(session, crypto, SystemClock(), spec)
    typer.echo(f"{row.id} {key}")
