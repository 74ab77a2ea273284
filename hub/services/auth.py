"""Callers and their scope: API keys (hashed, prefix-identified, revocable) and phone sessions."""

from __future__ import annotations

import hmac
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, select

from hub.clock import Clock
from hub.models.auth import ApiKey, ApiKeyCreate, Role
from hub.models.customers import Customer, CustomerSession
from hub.models.registry import Region, Store
from hub.models.types import new_id
from hub.security import HubCrypto, new_token
from hub.services.errors import Invalid, NotFound, Unauthorized

log = logging.getLogger(__name__)

API_KEY_PREFIX = "swk"
SESSION_PREFIX = "sws"
_API_KEY_PURPOSE = "api-key"
SESSION_PURPOSE = "session"
# Roles whose keys are bound to a region / a store; admin is global; phone never has a key.
REGION_ROLES = frozenset({Role.REGIONAL_OPS, Role.INSTALLER})
STORE_ROLES = frozenset({Role.STORE_STAFF, Role.KIOSK})
# A phone session found valid is trusted without a database read for this long (hub
# clock). Sign-out and erase in this process drop it at once; another worker process
# notices within this time. The check-in, the one write path on the hot loop, re-checks
# the session row in the statement that locks the customer, so it never waits for this.
SESSION_CACHE_TTL = timedelta(seconds=5)
# Bounded memory: a worker rarely sees this many distinct phones within one TTL.
SESSION_CACHE_SIZE = 100_000


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: role plus the one region, store or customer it is bound to."""

    role: Role
    region_id: str | None = None
    store_id: str | None = None
    customer_id: str | None = None
    key_id: str | None = None
    # A phone caller's session (the keyed hash of its token, never the token).
    session_hash: str | None = None

    def sees_store(self, store: Store) -> bool:
        """Whether ``store`` lies inside this caller's scope."""
        if self.role is Role.ADMIN:
            return True
        if self.role in REGION_ROLES:
            return store.region_id == self.region_id
        if self.role in STORE_ROLES:
            return store.id == self.store_id
        return False

    def sees_region(self, region_id: str) -> bool:
        """Whether region ``region_id`` lies inside this caller's scope."""
        return self.role is Role.ADMIN or (
            self.role in REGION_ROLES and region_id == self.region_id
        )


def scoped_store(session: Session, principal: Principal, store_id: str) -> Store:
    """The store if it exists and the caller may see it; else NotFound (never a hint)."""
    store = session.get(Store, store_id)
    if store is None or not principal.sees_store(store):
        raise NotFound(f"store {store_id!r} not found")
    return store


def create_api_key(
    session: Session, crypto: HubCrypto, clock: Clock, spec: ApiKeyCreate
) -> tuple[ApiKey, str]:
    """Create an API key; return the row and the key itself (shown once, stored hashed)."""
    role = Role(spec.role)
    # An empty scope id means "none" (clients send "" for unset fields); stored as NULL,
    # never as a dangling reference.
    spec = spec.model_copy(
        update={"region_id": spec.region_id or None, "store_id": spec.store_id or None}
    )
    if role is Role.PHONE:
        raise Invalid("phone callers sign in with a phone session, not an API key")
    if role in REGION_ROLES:
        if not spec.region_id or session.get(Region, spec.region_id) is None:
            raise Invalid(f"role {role.value} needs an existing region_id")
        if spec.store_id:
            raise Invalid(f"role {role.value} is bound to a region, not a store")
    elif role in STORE_ROLES:
        if not spec.store_id or session.get(Store, spec.store_id) is None:
            raise Invalid(f"role {role.value} needs an existing store_id")
        if spec.region_id:
            raise Invalid(f"role {role.value} is bound to a store, not a region")
    elif spec.region_id or spec.store_id:
        raise Invalid("admin keys are global: give neither region_id nor store_id")
    key, prefix = new_token(API_KEY_PREFIX)
    row = ApiKey(
        id=new_id("key"),
        prefix=prefix,
        key_hash=crypto.keyed_hash(_API_KEY_PURPOSE, key),
        name=spec.name,
        role=role.value,
        region_id=spec.region_id,
        store_id=spec.store_id,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    log.info("api key created", extra={"key_id": row.id, "role": role.value})
    return row, key


def revoke_api_key(session: Session, clock: Clock, key_id: str) -> ApiKey:
    """Revoke a key (idempotent); it stops working on the next request."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"api key {key_id!r} not found")
    if row.revoked_at is None:
        row.revoked_at = clock.now()
        session.add(row)
    return row


def authenticate(session: Session, crypto: HubCrypto, clock: Clock, token: str) -> Principal:
    """Resolve a bearer token (API key or phone session) into a Principal, or Unauthorized."""
    parts = token.split("_", 2)
    if len(parts) != 3:
        raise Unauthorized("malformed bearer token")
    kind, public_id, _ = parts
    if kind == API_KEY_PREFIX:
        row = session.exec(select(ApiKey).where(ApiKey.prefix == public_id)).first()
        # Compare the keyed hash even for an unknown prefix so timing does not tell.
        expected = crypto.keyed_hash(_API_KEY_PURPOSE, token)
        valid = row is not None and hmac.compare_digest(row.key_hash, expected)
        if row is None or not valid or row.revoked_at is not None:
            raise Unauthorized("unknown or revoked API key")
        return Principal(
            role=Role(row.role), region_id=row.region_id, store_id=row.store_id, key_id=row.id
        )
    if kind == SESSION_PREFIX:
        digest = crypto.keyed_hash(SESSION_PURPOSE, token)
        now = clock.now()
        generation = SESSIONS.generation
        sess = session.get(CustomerSession, digest)
        if sess is None or sess.revoked_at is not None or sess.expires_at <= now:
            raise Unauthorized("unknown, expired or revoked session")
        SESSIONS.put(digest, sess.customer_id, sess.expires_at, now, generation)
        return Principal(role=Role.PHONE, customer_id=sess.customer_id, session_hash=digest)
    raise Unauthorized("unknown kind of bearer token")


def cached_principal(crypto: HubCrypto, clock: Clock, token: str) -> Principal | None:
    """The phone caller of ``token`` if a fresh cache entry vouches for it, else None.

    None means "ask the database" (:func:`authenticate`), never "refused".
    """
    if not token.startswith(SESSION_PREFIX + "_"):
        return None
    digest = crypto.keyed_hash(SESSION_PURPOSE, token)
    customer_id = SESSIONS.get(digest, clock.now())
    if customer_id is None:
        return None
    return Principal(role=Role.PHONE, customer_id=customer_id, session_hash=digest)


def deferred_phone_principal(crypto: HubCrypto, clock: Clock, token: str) -> Principal | None:
    """A phone caller for a route that verifies the session itself (None: not a phone token).

    A fresh cache entry gives the customer; otherwise ``customer_id`` is None and only
    ``session_hash`` is known: the route must look the session up (and refuse it) in its
    own transaction, as :func:`hub.services.checkins.check_in` does.
    """
    if not token.startswith(SESSION_PREFIX + "_"):
        return None
    cached = cached_principal(crypto, clock, token)
    if cached is not None:
        return cached
    return Principal(role=Role.PHONE, session_hash=crypto.keyed_hash(SESSION_PURPOSE, token))


class SessionCache:
    """Phone sessions recently found valid: token hash -> customer, expiry, when cached.

    ``generation`` grows on every invalidation; an entry read from the database before an
    invalidation is not stored (it may be the row the invalidation was about).
    """

    def __init__(self) -> None:
        """An empty cache."""
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, datetime, datetime]] = {}
        self.generation = 0

    def get(self, digest: str, now: datetime) -> str | None:
        """The customer of session ``digest`` if cached, fresh and unexpired."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        customer_id, expires_at, cached_at = entry
        if expires_at <= now or now - cached_at >= SESSION_CACHE_TTL or now < cached_at:
            return None
        return customer_id

    def put(
        self, digest: str, customer_id: str, expires_at: datetime, now: datetime, generation: int
    ) -> None:
        """Remember a session the database just vouched for (read at ``generation``)."""
        with self._lock:
            if generation != self.generation:
                return
            if len(self._entries) >= SESSION_CACHE_SIZE:
                self._entries.clear()
            self._entries[digest] = (customer_id, expires_at, now)

    def forget(self, digests: set[str], customers: set[str]) -> None:
        """Drop the given sessions and every session of the given customers."""
        with self._lock:
            self.generation += 1
            for digest in digests:
                self._entries.pop(digest, None)
            if customers:
                for digest, entry in list(self._entries.items()):
                    if entry[0] in customers:
                        del self._entries[digest]

    def clear(self) -> None:
        """Drop everything (a bulk change to sessions whose rows are not known here)."""
        with self._lock:
            self.generation += 1
            self._entries.clear()


SESSIONS = SessionCache()
# Session.info key: what this transaction changed (to forget again once it commits).
_CHANGED = "storewave_sessions_changed"


def _changed(session: OrmSession) -> tuple[set[str], set[str], list[bool]]:
    """This transaction's changed session hashes, erased customers and a 'clear all' flag."""
    return session.info.setdefault(_CHANGED, (set(), set(), [False]))  # type: ignore[no-any-return]


def _on_flush(session: OrmSession, _context: Any, _instances: Any) -> None:
    """A session revoked or a customer erased through the ORM: forget it now (and at commit)."""
    digests: set[str] = set()
    customers: set[str] = set()
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, CustomerSession):
            digests.add(obj.token_hash)
        elif isinstance(obj, Customer) and obj in session.deleted:
            customers.add(obj.id)
    if digests or customers:
        changed = _changed(session)
        changed[0].update(digests)
        changed[1].update(customers)
        SESSIONS.forget(digests, customers)


def _on_orm_execute(state: Any) -> None:
    """A bulk UPDATE/DELETE of sessions or customers (erase-my-data): forget every session."""
    mapper = state.bind_mapper if state.is_update or state.is_delete else None
    if mapper is not None and mapper.class_ in (CustomerSession, Customer):
        _changed(state.session)[2][0] = True
        SESSIONS.clear()


def _on_commit(session: OrmSession) -> None:
    """The change is now what every reader sees: forget whatever was cached meanwhile."""
    changed = session.info.pop(_CHANGED, None)
    if changed is None:
        return
    if changed[2][0]:
        SESSIONS.clear()
    else:
        SESSIONS.forget(changed[0], changed[1])


def _on_rollback(session: OrmSession) -> None:
    """Nothing changed after all."""
    session.info.pop(_CHANGED, None)


event.listen(OrmSession, "before_flush", _on_flush)
event.listen(OrmSession, "do_orm_execute", _on_orm_execute)
event.listen(OrmSession, "after_commit", _on_commit)
event.listen(OrmSession, "after_rollback", _on_rollback)
