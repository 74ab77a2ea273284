"""The phone-session cache on its own: TTL and expiry by the hub clock, invalidation races."""

from __future__ import annotations

from datetime import timedelta

from hub.clock import ManualClock
from hub.models.auth import Role
from hub.security import HubCrypto
from hub.services.auth import (
    SESSION_CACHE_TTL,
    SESSION_PREFIX,
    SESSION_PURPOSE,
    SESSIONS,
    SessionCache,
    cached_principal,
    deferred_phone_principal,
)
from tests.hub.conftest import TEST_SECRET

CRYPTO = HubCrypto(TEST_SECRET.encode())


def test_fresh_entries_only_and_never_past_the_session_expiry(clock: ManualClock) -> None:
    """Served within the TTL and before the session expires; not for a clock set back."""
    cache = SessionCache()
    now = clock.now()
    cache.put("h", "cus_a", now + timedelta(seconds=3), now, cache.generation)
    assert cache.get("h", now + timedelta(seconds=2)) == "cus_a"
    assert cache.get("h", now + timedelta(seconds=3)) is None  # the session itself expired
    cache.put("k", "cus_b", now + timedelta(days=1), now, cache.generation)
    assert cache.get("k", now + SESSION_CACHE_TTL) is None
    assert cache.get("k", now - timedelta(seconds=1)) is None
    assert cache.get("unknown", now) is None


def test_a_read_from_before_an_invalidation_is_not_stored(clock: ManualClock) -> None:
    """A row read, then revoked and forgotten before the reader stores it: not cached."""
    cache = SessionCache()
    now = clock.now()
    read_at = cache.generation
    cache.forget({"h"}, set())
    cache.put("h", "cus_a", now + timedelta(days=1), now, read_at)
    assert cache.get("h", now) is None


def test_forget_by_customer_and_clear(clock: ManualClock) -> None:
    """Erasing a customer forgets all their sessions; clear forgets everyone's."""
    cache = SessionCache()
    now, later = clock.now(), clock.now() + timedelta(days=1)
    for digest, customer in (("h1", "cus_a"), ("h2", "cus_a"), ("h3", "cus_b")):
        cache.put(digest, customer, later, now, cache.generation)
    cache.forget(set(), {"cus_a"})
    assert [cache.get(d, now) for d in ("h1", "h2", "h3")] == [None, None, "cus_b"]
    cache.clear()
    assert cache.get("h3", now) is None


def test_phone_tokens_resolve_from_the_cache_or_defer(clock: ManualClock) -> None:
    """A cached session gives its customer; an uncached one only its hash; API keys: None."""
    token = f"{SESSION_PREFIX}_0123abcd_{'s' * 32}"
    digest = CRYPTO.keyed_hash(SESSION_PURPOSE, token)
    SESSIONS.forget({digest}, set())
    deferred = deferred_phone_principal(CRYPTO, clock, token)
    assert deferred is not None and deferred.role is Role.PHONE
    assert deferred.customer_id is None and deferred.session_hash == digest
    assert cached_principal(CRYPTO, clock, token) is None
    SESSIONS.put(digest, "cus_a", clock.now() + timedelta(days=1), clock.now(), SESSIONS.generation)
    cached = cached_principal(CRYPTO, clock, token)
    assert cached is not None and cached.customer_id == "cus_a"
    assert deferred_phone_principal(CRYPTO, clock, "swk_0123abcd_secret") is None
    SESSIONS.forget({digest}, set())
