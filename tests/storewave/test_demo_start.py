"""``storewave demo`` starts its moved clock inside the demo store's opening hours,
whatever the wall-clock hour, weekday or date it is run at."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from hub.seed import REGISTRY_FILE, SEEDS_DIR
from hub.services.fraud import is_open_at, opening_spans
from storewave.demo import DEMO_STORE, STORE_TZ, demo_start_time

# The longest demo the CLI allows (--minutes max 60), plus the step after the walk-ins.
LONGEST_DEMO = timedelta(minutes=65)
# Two weeks of wall-clock instants, every 20 minutes, over a month end (Nov 30 -> Dec 1).
RUN_AT = [datetime(2026, 11, 23, tzinfo=UTC) + timedelta(minutes=20 * n)
          for n in range(14 * 24 * 3)]


def _demo_store_hours() -> tuple[tuple[tuple[int, int], ...], ...]:
    registry = json.loads((SEEDS_DIR / REGISTRY_FILE).read_text(encoding="utf-8"))
    store = next(s for s in registry["stores"] if s["id"] == DEMO_STORE)
    spans = opening_spans(store["opening_hours"])
    assert spans is not None
    return spans


def test_the_demo_day_starts_at_an_open_hour_from_any_wall_clock_time() -> None:
    spans = _demo_store_hours()
    for now in RUN_AT:
        start = demo_start_time(now)
        assert now <= start < now + timedelta(days=2, hours=1), now
        assert start.astimezone(STORE_TZ).time().isoformat() == "10:30:00", now
        for offset in (timedelta(0), LONGEST_DEMO):
            assert is_open_at(spans, STORE_TZ, start + offset), (now, start + offset)


@pytest.mark.parametrize(("now", "start"), [
    # Just before the Shanghai day boundary (16:00 UTC) on a month's last day: next morning.
    (datetime(2026, 11, 30, 15, 59, 59, tzinfo=UTC), datetime(2026, 12, 1, 2, 30, tzinfo=UTC)),
    # Just after it: the same local day's 10:30 (still ahead).
    (datetime(2026, 11, 30, 16, 0, 1, tzinfo=UTC), datetime(2026, 12, 1, 2, 30, tzinfo=UTC)),
    # Exactly 10:30 local: now itself.
    (datetime(2026, 12, 1, 2, 30, tzinfo=UTC), datetime(2026, 12, 1, 2, 30, tzinfo=UTC)),
    # Saturday 10:31 local: Sunday is skipped, Monday 10:30.
    (datetime(2026, 12, 5, 2, 31, tzinfo=UTC), datetime(2026, 12, 7, 2, 30, tzinfo=UTC)),
    # Sunday evening local: Monday 10:30.
    (datetime(2026, 12, 6, 13, 15, tzinfo=UTC), datetime(2026, 12, 7, 2, 30, tzinfo=UTC)),
])
def test_demo_start_at_awkward_instants(now: datetime, start: datetime) -> None:
    assert demo_start_time(now) == start
