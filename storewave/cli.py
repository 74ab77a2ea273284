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


def _not_built(name: str, issue: int, what: str) -> typer.Typer:
    """A group for a part that is not built yet: it says so and exits non-zero."""
    group = typer.Typer(help=f"{what} (not built yet: issue #{issue}).", add_completion=False)

    @group.callback(invoke_without_command=True)
    def _unavailable() -> None:
        typer.secho(
            f"'storewave {name}' is not built yet (issue #{issue}); nothing was run.",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)

    return group


def _mount() -> None:
    """Attach every part's commands. Parts that exist register themselves here."""
    from storewave.demo import demo_command

    app.command("demo", help="Run the whole StoreWave loop on embedded defaults.")(demo_command)
    from hub.cli import hub_app

    app.add_typer(hub_app, name="hub")
    from edge.cli import edge_app

    app.add_typer(edge_app, name="edge")
    from kiosk.cli import kiosk_app

    app.add_typer(kiosk_app, name="kiosk")
    from firmware_sim.cli import app as sim_app

    app.add_typer(sim_app, name="sim")
    from edge.modem.cli import decode_command, encode_command
    from storewave.bench import bench_app

    app.command("encode", help="Write a modem frame carrying a 48-bit payload to a WAV.")(
        encode_command
    )
    app.command("decode", help="Decode modem frames from a WAV file.")(decode_command)
    app.add_typer(bench_app, name="bench")


_mount()
