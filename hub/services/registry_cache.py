"""What a check-in needs of the registry (beacon keys, store hours and place), cached per process.

Beacons and stores change a few times a day; check-ins read them hundreds of times a
second. The cache keeps, per database, each beacon's decrypted keys, store and zone, and
each store's capacity, parsed opening hours and coordinates.

Invalidation:
- in this process, at once: any ORM insert, update or delete of a Beacon, Store or Zone
  (key rotation, range change, new hours...), and any change to a Node that a check-in
  reads (moved, deleted, revoked or reinstated; not its last-seen, health or config
  version, which ingest updates all the time) empties the cache when it is flushed and
  again when its transaction commits (a check-in that reloaded between the two would
  otherwise keep the old row);
- in the hub's other worker processes, which see no ORM event: each entry lives at most
  ``REGISTRY_CACHE_TTL`` of the hub clock. A rotated key's predecessor stays valid for the
  slot window (90 s), far longer, so codes in the air are never lost; a new key's codes
  may be refused by another worker for at most that long.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, event, inspect, select
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from hub.models.registry import Beacon, Node, NodeState, Store, Zone
from hub.security import HubCrypto
from hub.services import fraud

# How stale another worker's view of a registry change may be (see the module docstring).
REGISTRY_CACHE_TTL = timedelta(seconds=5)
# Beacon short ids are 17 bits; unknown ids are cached too (as None), so a forger cycling
# through ids cannot make every code a database read. Past this many entries, start over.
MAX_CACHED_ENTRIES = 150_000
# Session.info flag: this transaction wrote registry rows (invalidate again on commit).
_DIRTY = "storewave_registry_dirty"
_REGISTRY_MODELS = (Beacon, Store, Zone)
# What a check-in reads of a node: where it is (its beacon carries a copy) and whether it
# is revoked. Any other column changing (last seen, state online/lost, health, config
# version) leaves the cache alone.
_NODE_READ_ATTRIBUTES = ("store_id", "zone_id")
_BEACON = Beacon.__table__  # type: ignore[attr-defined]
_NODE = Node.__table__  # type: ignore[attr-defined]
_STORE = Store.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class BeaconKey:
    """One key a beacon's codes may be signed with, valid until ``until`` (None: current)."""

    key: bytes
    until: datetime | None


@dataclass(frozen=True, slots=True)
class CachedBeacon:
    """What verifying a beacon's code needs."""

    short_id: int
    store_id: str
    zone_id: str | None
    slot_s: int
    keys: tuple[BeaconKey, ...]
    # The beacon's node is revoked: its codes, even genuine ones, no longer check in.
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class CachedStore:
    """What the fraud rules need of a store."""

    id: str
    capacity: int
    latitude: float
    longitude: float
    timezone: ZoneInfo
    hours: fraud.OpeningSpans | None

    def is_open(self, when: datetime) -> bool:
        """Whether the store is open at ``when`` in its own time zone."""
        return fraud.is_open_at(self.hours, self.timezone, when)


def _fresh(cached_at: datetime, now: datetime) -> bool:
    """Whether an entry cached at ``cached_at`` may serve ``now`` (a clock set back: no)."""
    return timedelta(0) <= now - cached_at < REGISTRY_CACHE_TTL


class RegistryCache:
    """Cached beacons and stores of one database (thread-safe; entries expire by TTL)."""

    def __init__(self) -> None:
        """An empty cache."""
        self._lock = threading.Lock()
        self._beacons: dict[int, tuple[datetime, CachedBeacon | None]] = {}
        self._stores: dict[str, tuple[datetime, CachedStore | None]] = {}
        self._generation = 0

    def clear(self) -> None:
        """Forget everything (a registry row changed)."""
        with self._lock:
            self._beacons.clear()
            self._stores.clear()
            self._generation += 1

    def size(self) -> int:
        """How many beacons and stores are cached (for tests and metrics)."""
        return len(self._beacons) + len(self._stores)

    def beacon(
        self, session: Session, crypto: HubCrypto, short_id: int, now: datetime
    ) -> CachedBeacon | None:
        """Beacon ``short_id`` (None if unknown), from the cache while fresh."""
        hit = self._beacons.get(short_id)
        if hit is not None and _fresh(hit[0], now):
            return hit[1]
        generation = self._generation
        b, n = _BEACON.c, _NODE.c
        # Inner join: a beacon whose node row is gone is no beacon.
        query = (
            select(
                b.store_id,
                b.zone_id,
                b.slot_s,
                b.key_enc,
                b.previous_key_enc,
                b.previous_key_until,
                n.state,
            )
            .select_from(_BEACON.join(_NODE, n.id == b.node_id))
            .where(b.short_id == short_id)
        )
        row = session.connection().execute(query).first()
        beacon = None
        if row is not None:
            keys = [BeaconKey(bytes.fromhex(crypto.decrypt_cached(row.key_enc)), None)]
            if row.previous_key_enc and row.previous_key_until:
                previous = bytes.fromhex(crypto.decrypt_cached(row.previous_key_enc))
                keys.append(BeaconKey(previous, row.previous_key_until))
            beacon = CachedBeacon(
                short_id,
                row.store_id,
                row.zone_id,
                row.slot_s,
                tuple(keys),
                revoked=row.state == NodeState.REVOKED.value,
            )
        self._put(self._beacons, short_id, (now, beacon), generation)
        return beacon

    def store(self, session: Session, store_id: str, now: datetime) -> CachedStore | None:
        """Store ``store_id`` (None if unknown), from the cache while fresh."""
        hit = self._stores.get(store_id)
        if hit is not None and _fresh(hit[0], now):
            return hit[1]
        generation = self._generation
        s = _STORE.c
        query = select(s.capacity, s.latitude, s.longitude, s.timezone, s.opening_hours).where(
            s.id == store_id
        )
        row = session.connection().execute(query).first()
        store = None
        if row is not None:
            store = CachedStore(
                store_id,
                row.capacity,
                row.latitude,
                row.longitude,
                ZoneInfo(row.timezone),
                fraud.opening_spans(row.opening_hours),
            )
        self._put(self._stores, store_id, (now, store), generation)
        return store

    def _put(self, table: dict[Any, Any], key: Any, value: Any, generation: int) -> None:
        """Store ``value`` unless the registry changed while it was being read."""
        with self._lock:
            if generation == self._generation:
                if len(table) >= MAX_CACHED_ENTRIES:
                    table.clear()
                table[key] = value


_caches: weakref.WeakKeyDictionary[Engine, RegistryCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_for(session: Session) -> RegistryCache:
    """The registry cache of the database ``session`` is bound to."""
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    cache = _caches.get(engine)
    if cache is None:
        with _caches_lock:
            cache = _caches.setdefault(engine, RegistryCache())
    return cache


def invalidate_all() -> None:
    """Empty every database's registry cache (a registry row changed in this process)."""
    with _caches_lock:
        caches = list(_caches.values())
    for cache in caches:
        cache.clear()


def _node_change_matters(node: Node) -> bool:
    """Whether a pending update of ``node`` changes what a check-in reads of it."""
    attrs = inspect(node).attrs
    if any(attrs[name].history.has_changes() for name in _NODE_READ_ATTRIBUTES):
        return True
    state = attrs["state"].history
    if not state.has_changes():
        return False
    before = state.deleted or state.unchanged
    if not before:  # the old value was not loaded: assume it mattered
        return True
    revoked = NodeState.REVOKED.value
    now_revoked = bool(state.added) and state.added[0] == revoked
    return (before[0] == revoked) != now_revoked


def _matters(session: OrmSession) -> bool:
    """Whether this flush writes registry rows a check-in reads."""
    if any(isinstance(obj, (*_REGISTRY_MODELS, Node)) for obj in session.deleted):
        return True
    if any(isinstance(obj, _REGISTRY_MODELS) for obj in (*session.new, *session.dirty)):
        return True
    # A new node has no beacon yet (creating one is a Beacon insert).
    return any(isinstance(obj, Node) and _node_change_matters(obj) for obj in session.dirty)


def drop_with_orm_writes(
    flag: str, writes: Callable[[OrmSession], bool], drop: Callable[[], None]
) -> None:
    """Call ``drop`` when a flush ``writes`` rows a cache holds, and again at that commit.

    Dropped at the flush, a reader cannot keep the old row after this process changed it;
    dropped once more at the commit, a reader that reloaded between the two (and saw the
    old, still committed row) cannot keep it either. ``flag`` (a ``Session.info`` key)
    remembers the transaction wrote such rows; a rollback forgets it (nothing to drop).
    """

    def on_flush(session: OrmSession, _context: Any, _instances: Any) -> None:
        if writes(session):
            session.info[flag] = True
            drop()

    def on_commit(session: OrmSession) -> None:
        if session.info.pop(flag, False):
            drop()

    def on_rollback(session: OrmSession) -> None:
        session.info.pop(flag, None)

    event.listen(OrmSession, "before_flush", on_flush)
    event.listen(OrmSession, "after_commit", on_commit)
    event.listen(OrmSession, "after_rollback", on_rollback)


drop_with_orm_writes(_DIRTY, _matters, invalidate_all)
