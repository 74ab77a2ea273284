"""The registry cache on its own: freshness by the hub clock, misses cached, ORM invalidation."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, text
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.registry import Beacon
from hub.services.registry_cache import REGISTRY_CACHE_TTL, RegistryCache, cache_for
from tests.hub.factories import CRYPTO, seed


def _unannounced_zone_change(engine: Engine) -> None:
    """Beacon 101 loses its zone behind the cache's back (as another process would do it)."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE beacon SET zone_id = NULL WHERE short_id = 101"))


def test_entries_expire_by_the_hub_clock_and_never_serve_the_past(
    engine: Engine, clock: ManualClock
) -> None:
    """Fresh within the TTL; reloaded after it, and when the clock was set back."""
    seed(engine, clock)
    cache = RegistryCache()
    now = clock.now()
    with Session(engine) as session:
        first = cache.beacon(session, CRYPTO, 101, now)
        assert first is not None and first.zone_id == "fz-gulou-door" and len(first.keys) == 1
        session.rollback()  # end the transaction (SQLite: release the write lock)
        _unannounced_zone_change(engine)
        assert cache.beacon(session, CRYPTO, 101, now + timedelta(seconds=1)) == first
        earlier = cache.beacon(session, CRYPTO, 101, now - timedelta(seconds=1))
        assert earlier is not None and earlier.zone_id is None
        later = cache.beacon(session, CRYPTO, 101, now + REGISTRY_CACHE_TTL)
        assert later is not None and later.zone_id is None


def test_unknown_beacons_and_stores_are_cached_misses(engine: Engine, clock: ManualClock) -> None:
    """An unknown id answers None without growing anything but one entry each."""
    seed(engine, clock)
    cache = RegistryCache()
    with Session(engine) as session:
        assert cache.beacon(session, CRYPTO, 99_999, clock.now()) is None
        assert cache.store(session, "nowhere", clock.now()) is None
        store = cache.store(session, "fz-gulou", clock.now())
    assert cache.size() == 3
    assert store is not None and store.capacity > 0 and store.is_open(clock.now())


def test_an_orm_change_empties_the_cache(engine: Engine, clock: ManualClock) -> None:
    """Any Beacon change through the ORM (here a zone) empties the engine's cache."""
    seed(engine, clock)
    with Session(engine) as session:
        cache = cache_for(session)
        cache.beacon(session, CRYPTO, 101, clock.now())
        assert cache.size() > 0
        beacon = session.get(Beacon, 101)
        assert beacon is not None
        beacon.zone_id = None
        session.add(beacon)
        session.commit()
        assert cache.size() == 0
        reloaded = cache.beacon(session, CRYPTO, 101, clock.now())
    assert reloaded is not None and reloaded.zone_id is None
