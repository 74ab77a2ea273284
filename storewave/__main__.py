"""``python -m storewave`` runs the CLI."""

from storewave.cli import app

app()
