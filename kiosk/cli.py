"""``storewave kiosk``: run the full-screen kiosk for one store against a hub."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError

from kiosk.client import DEFAULT_TIMEOUT_S, KioskClient
from storewave.settings import KioskSettings

# The store the --demo hub seeds and serves when no store is configured.
DEMO_STORE = "fz-gulou"

kiosk_app = typer.Typer(help="The in-store self-service kiosk.", add_completion=False)


@kiosk_app.callback(invoke_without_command=True)
def run_kiosk(
    hub: str | None = typer.Option(
        None, "--hub", help="The hub's base URL, e.g. http://127.0.0.1:8080 (\\[kiosk] hub_url)"
    ),
    store: str | None = typer.Option(
        None, "--store", help="This kiosk's store id (\\[kiosk] store_id)"
    ),
    key: str | None = typer.Option(
        None, "--key", envvar="STOREWAVE_KIOSK_KEY",
        help="A kiosk API key for this store (\\[kiosk] api_key)",
    ),
    idle_s: float | None = typer.Option(
        None, "--idle", min=5.0, help="Seconds of no touch before reset (\\[kiosk] idle_timeout_s)"
    ),
    config: Path | None = typer.Option(
        None, "--config", help="TOML settings file with a \\[kiosk] table (else $STOREWAVE_CONFIG)"
    ),
    language: str | None = typer.Option(
        None, "--language", help="The language each customer starts in: en or zh "
        "(\\[kiosk] default_language)"
    ),
    timeout_s: float = typer.Option(DEFAULT_TIMEOUT_S, "--timeout", min=0.5,
                                    help="Seconds to wait for the hub"),
    demo: Path | None = typer.Option(
        None, "--demo", help="Start a seeded hub in this directory instead (SMS codes go to "
        "DIR/sms.txt)"
    ),
) -> None:
    """Run the kiosk full screen until Ctrl+Q (flags override the \\[kiosk] settings)."""
    from kiosk.app import KioskApp

    given = {"hub_url": hub, "store_id": store, "api_key": key, "idle_timeout_s": idle_s,
             "default_language": language}
    try:
        settings = KioskSettings.load(config, **{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        typer.secho(f"[kiosk] {where}: {first['msg']}", fg="red", err=True)
        raise typer.Exit(2) from None
    store_id = settings.store_id or DEMO_STORE
    hub_url, api_key = settings.hub_url, settings.api_key
    demo_hub = None
    if demo is not None:
        from kiosk.demo import start_demo_hub

        demo_hub = start_demo_hub(demo, store_id)
        hub_url, api_key = demo_hub.hub.url, demo_hub.kiosk_key
    elif not hub_url or not api_key:
        typer.secho("give --hub and --key (a kiosk API key), or --demo DIR", fg="red", err=True)
        raise typer.Exit(2)
    try:
        client = KioskClient(hub_url, store_id, api_key, timeout_s=timeout_s)
        KioskApp(client, idle_timeout_s=settings.idle_timeout_s,
                 default_language=settings.default_language).run()
    finally:
        if demo_hub is not None:
            demo_hub.stop()
