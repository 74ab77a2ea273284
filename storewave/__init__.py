"""StoreWave glue: the one CLI, settings, logging and the wire schemas every part shares."""

from __future__ import annotations

__version__ = "0.1.0"
