"""``storewave kiosk``: run the full-screen kiosk for one store against a hub."""

from __future__ import annotations

from pathlib import Path

import typer

from kiosk import DEFAULT_IDLE_TIMEOUT_S
from kiosk.client import DEFAULT_TIMEOUT_S, KioskClient

kiosk_app = typer.Typer(help="The in-store self-service kiosk.", add_completion=False)


@kiosk_app.callback(invoke_without_command=True)
def run_kiosk(
    hub: str = typer.Option("", "--hub", help="The hub's base URL, e.g. http://127.0.0.1:8080"),
    store: str = typer.Option("fz-gulou", "--store", help="This kiosk's store id"),
    key: str = typer.Option(
        "", "--key", envvar="STOREWAVE_KIOSK_KEY", help="A kiosk API key for this store"
    ),
    idle_s: float = typer.Option(
        DEFAULT_IDLE_TIMEOUT_S, "--idle", min=5.0, help="Seconds of no touch before reset"
    ),
    timeout_s: float = typer.Option(DEFAULT_TIMEOUT_S, "--timeout", min=0.5,
                                    help="Seconds to wait for the hub"),
    demo: Path | None = typer.Option(
        None, "--demo", help="Start a seeded hub in this directory instead (SMS codes go to "
        "DIR/sms.txt)"
    ),
) -> None:
    """Run the kiosk full screen until Ctrl+Q."""
    from kiosk.app import KioskApp

    demo_hub = None
    if demo is not None:
        from kiosk.demo import start_demo_hub

        demo_hub = start_demo_hub(demo, store)
        hub, key = demo_hub.hub.url, demo_hub.kiosk_key
    elif not hub or not key:
        typer.secho("give --hub and --key (a kiosk API key), or --demo DIR", fg="red", err=True)
        raise typer.Exit(2)
    try:
        KioskApp(KioskClient(hub, store, key, timeout_s=timeout_s), idle_timeout_s=idle_s).run()
    finally:
        if demo_hub is not None:
            demo_hub.stop()
