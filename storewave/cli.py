"""The one ``storewave`` command line: each part mounts its own sub-commands here."""

from __future__ import annotations

import typer

from storewave import __version__

app = typer.Typer(
    name="storewave",
    help="StoreWave: ultrasonic check-in beacons, edge nodes, hub, kiosk and simulator.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"storewave {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """StoreWave command line."""


def _mount() -> None:
    """Attach every part's commands (each part's CLI module imports its part lazily)."""
    from edge.cli import edge_app
    from edge.modem.cli import decode_command, encode_command
    from firmware_sim.cli import app as sim_app
    from hub.cli import hub_app
    from kiosk.cli import kiosk_app
    from storewave.bench import bench_app
    from storewave.demo import demo_command

    app.command("demo", help="Run the whole StoreWave loop on embedded defaults.")(demo_command)
    app.add_typer(hub_app, name="hub")
    app.add_typer(edge_app, name="edge")
    app.add_typer(kiosk_app, name="kiosk")
    app.add_typer(sim_app, name="sim")
    app.command("encode", help="Write a modem frame carrying a 48-bit payload to a WAV.")(
        encode_command
    )
    app.command("decode", help="Decode modem frames from a WAV file.")(decode_command)
    app.add_typer(bench_app, name="bench")


_mount()
