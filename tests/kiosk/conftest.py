"""A real embedded hub for the kiosk suites (one per module), kiosk keys, phones, apps."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from hub.clock import ManualClock
from hub.embedded import EmbeddedHub, start_embedded_hub
from hub.models.auth import Role
from kiosk.app import KioskApp
from kiosk.client import KioskClient

STORE = "fz-gulou"
# A fixed instant (Monday 10:30 in Fuzhou, store open) so snapshots and expiries never
# drift; written out, not derived from today's date.
FIXED_START = datetime(2026, 11, 30, 2, 30, tzinfo=UTC)
# Polls every 50 ms so a presence sign-in shows within a few Pilot pauses.
FAST_POLL_S = 0.05
# Tests wait on conditions for at most this long (a loaded 2-core box is slow).
WAIT_S = 20.0
_phones = itertools.count(1)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedHub]:
    """A seeded hub on a free port with a manual clock inside opening hours."""
    started = start_embedded_hub(
        tmp_path_factory.mktemp("kiosk-hub"), clock=ManualClock(FIXED_START)
    )
    yield started
    started.stop()


@pytest.fixture(scope="module")
def kiosk_key(hub: EmbeddedHub) -> str:
    """A kiosk API key scoped to the test store."""
    return hub.api_key(Role.KIOSK, store_id=STORE, name="kiosk-test")


@pytest.fixture
def phone() -> str:
    """A fresh phone number for every test (each one a new customer)."""
    return f"+86139{next(_phones):08d}"


def make_app(url: str, key: str, **options: Any) -> KioskApp:
    """A kiosk app for the test store with fast polling."""
    timeout = options.pop("timeout_s", 10.0)
    options.setdefault("presence_poll_s", FAST_POLL_S)
    return KioskApp(KioskClient(url, STORE, key, timeout_s=timeout), **options)


