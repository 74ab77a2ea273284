"""Callers and their scope: API keys (hashed, prefix-identified, revocable) and phone sessions."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

from sqlmodel import Session, select

from hub.clock import Clock
from hub.models.auth import ApiKey, ApiKeyCreate, Role
from hub.models.customers import CustomerSession
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


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: role plus the one region, store or customer it is bound to."""

    role: Role
    region_id: str | None = None
    store_id: str | None = None
    customer_id: str | None = None
    key_id: str | None = None

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
        sess = session.get(CustomerSession, crypto.keyed_hash(SESSION_PURPOSE, token))
        if sess is None or sess.revoked_at is not None or sess.expires_at <= clock.now():
            raise Unauthorized("unknown, expired or revoked session")
        return Principal(role=Role.PHONE, customer_id=sess.customer_id)
    raise Unauthorized("unknown kind of bearer token")
