"""Coupons: templates, unguessable codes and imported pools, exactly-once redemption, audit.

Every state change is one conditional UPDATE (``... WHERE state = 'issued'``): whichever
of N concurrent requests the database lets through first wins, the others see zero rows
changed, so a coupon is redeemed once however many tills try. Each change also appends a
``coupon_event`` row (who, where, why), and a redemption or reversal carries the till's
client key, so a retried request gets the first answer instead of a second effect.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from hub.db import DriverStatement
from hub.models.coupons import (
    Coupon,
    CouponAction,
    CouponEvent,
    CouponState,
    CouponTemplate,
    RedeemRequest,
    ReverseRequest,
)
from hub.models.registry import Store
from hub.models.timers import Timer, TimerState
from hub.models.types import UtcDateTime, new_id
from hub.services.auth import Principal, scoped_store
from hub.services.errors import Conflict, Forbidden, Invalid, NotFound
from hub.services.timers import cancel, schedule, timer_handler

log = logging.getLogger(__name__)

# Crockford's base32 alphabet (no I, L, O, U): 32 symbols read aloud and typed without
# confusion. 16 symbols x 5 bits = 80 bits of entropy from ``secrets``: guessing one live
# code among a million issued takes ~2^60 tries, far beyond any rate limit.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_SYMBOLS = 16
CODE_GROUP = 4
CODE_ENTROPY_BITS = 80
EXPIRE_TIMER = "coupon.expire"
SYSTEM_ACTOR = "system"
_COUPON = COUPON = Coupon.__table__  # type: ignore[attr-defined]
_EVENT = EVENT = CouponEvent.__table__  # type: ignore[attr-defined]
_TIMER = TIMER = Timer.__table__  # type: ignore[attr-defined]


def new_code() -> str:
    """A fresh coupon code: 80 random bits as ``XXXX-XXXX-XXXX-XXXX``.

    The 80 bits are drawn at once and cut into 16 groups of 5, one symbol each: uniform
    like 16 draws of ``secrets.choice`` (32 symbols = 5 bits), at a tenth of the cost.
    """
    bits = int.from_bytes(secrets.token_bytes(CODE_ENTROPY_BITS // 8), "big")
    raw = "".join(CODE_ALPHABET[(bits >> (5 * i)) & 31] for i in range(CODE_SYMBOLS))
    return "-".join(raw[i : i + CODE_GROUP] for i in range(0, CODE_SYMBOLS, CODE_GROUP))


def normalise_code(code: str) -> str:
    """Codes are matched upper-case and trimmed (tills and people type them)."""
    return code.strip().upper()


def actor_of(principal: Principal) -> str:
    """Who did it, for the audit trail: the API key id or the customer id, never a secret."""
    return principal.key_id or principal.customer_id or principal.role.value


# ---------------------------------------------------------------- issue


def issue(
    session: Session,
    template: CouponTemplate,
    customer_id: str,
    now: datetime,
    *,
    campaign_id: str | None = None,
    actor: str = SYSTEM_ACTOR,
) -> Coupon:
    """Give the customer a coupon: a pool code if the template has one left, else a new code."""
    expires_at = now + timedelta(days=template.valid_days)
    coupon = _claim_pool_code(session, template, customer_id, now, expires_at, campaign_id)
    if coupon is None:
        coupon = Coupon(
            id=new_id("cpn"),
            code=new_code(),
            template_id=template.id,
            customer_id=customer_id,
            campaign_id=campaign_id,
            state=CouponState.ISSUED,
            issued_at=now,
            expires_at=expires_at,
        )
        session.add(coupon)
        session.flush()
    schedule(session, EXPIRE_TIMER, coupon.id, expires_at, now=now)
    _audit(session, coupon.id, CouponAction.ISSUED, actor, now, detail={"campaign": campaign_id})
    return coupon


def _claim_pool_code(
    session: Session,
    template: CouponTemplate,
    customer_id: str,
    now: datetime,
    expires_at: datetime,
    campaign_id: str | None,
) -> Coupon | None:
    """Take one unclaimed pool code for the customer, as an ORM row."""
    claimed = _claim_pool_row(session, template.id, customer_id, now, expires_at, campaign_id)
    if claimed is None:
        return None
    coupon = session.get(Coupon, claimed[0], populate_existing=True)
    assert coupon is not None  # just updated in this transaction
    return coupon


def _claim_pool_row(
    session: Session,
    template_id: str,
    customer_id: str,
    now: datetime,
    expires_at: datetime,
    campaign_id: str | None,
) -> tuple[str, str] | None:
    """Take one unclaimed pool code (skipping rows another transaction has locked), in one
    statement: (id, code), or None when the template has no code left to take."""
    params = {
        "pool_template": template_id,
        "claim_customer": customer_id,
        "claim_campaign": campaign_id,
        "claim_at": now,
        "claim_expires": expires_at,
    }
    if session.get_bind().dialect.name == "sqlite":
        row = _SQLITE_CLAIM_POOL.first(session.connection(), params)
    else:
        row = session.connection().execute(_CLAIM_POOL, params).first()
    return None if row is None else (row[0], row[1])


# Built once: building a statement costs more than running it on SQLite. The oldest pool
# code of the template, locked and skipped if another transaction holds it (PostgreSQL;
# SQLite's writers are serialised), is issued by the same statement: a locked row cannot
# change state under its lock, so the outer guard only restates what the pick required.
_POOL_PICK = (
    select(_COUPON.c.id)
    .where(
        _COUPON.c.template_id == bindparam("pool_template"),
        _COUPON.c.state == CouponState.POOL.value,
    )
    .order_by(_COUPON.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)
    .scalar_subquery()
)
_CLAIM_POOL = (
    update(_COUPON)
    .where(_COUPON.c.id == _POOL_PICK, _COUPON.c.state == CouponState.POOL.value)
    .values(
        state=CouponState.ISSUED.value,
        customer_id=bindparam("claim_customer"),
        campaign_id=bindparam("claim_campaign"),
        issued_at=bindparam("claim_at", type_=UtcDateTime),
        expires_at=bindparam("claim_expires", type_=UtcDateTime),
        version=_COUPON.c.version + 1,
    )
    .returning(_COUPON.c.id, _COUPON.c.code)
)


# SQLite: on the driver's cursor (``hub.db.DriverStatement``), compiled on first use.
_SQLITE_CLAIM_POOL = DriverStatement(_CLAIM_POOL)


@dataclass(frozen=True)
class CampaignCoupon:
    """One coupon a campaign grant gives: its template (and the template's validity)."""

    template_id: str
    valid_days: int
    campaign_id: str


@dataclass
class CampaignIssue:
    """One evaluation's coupons: ``(coupon id, code)`` per wanted item, in order, and the
    rows still to insert (new codes, their expiry timers, the 'issued' audit lines)."""

    issued: list[tuple[str, str]]
    coupons: list[dict[str, Any]]
    timers: list[dict[str, Any]]
    events: list[dict[str, Any]]
    # Templates said to have pool codes whose pool had none left to take.
    ran_dry: list[str] = field(default_factory=list)


def mint_for_campaigns(
    session: Session,
    wanted: Sequence[CampaignCoupon],
    customer_id: str,
    now: datetime,
    pooled: Container[str] | None = None,
) -> CampaignIssue:
    """Claim pool codes (as ``issue`` does) and make new codes for the rest; the rows to
    insert are returned, not written, so the caller can write them with its own rows
    (campaign evaluation: one statement on PostgreSQL).

    ``pooled``: the templates that may have pool codes (None: any may); the others get
    new codes without a look at the pool.
    """
    out = CampaignIssue([], [], [], [])
    for item in wanted:
        expires_at = now + timedelta(days=item.valid_days)
        claimed = None
        if (pooled is None or item.template_id in pooled) and item.template_id not in out.ran_dry:
            claimed = _claim_pool_row(
                session, item.template_id, customer_id, now, expires_at, item.campaign_id
            )
            if claimed is None:
                out.ran_dry.append(item.template_id)
        if claimed is None:
            claimed = (new_id("cpn"), new_code())
            out.coupons.append(
                {
                    "id": claimed[0],
                    "code": claimed[1],
                    "template_id": item.template_id,
                    "customer_id": customer_id,
                    "campaign_id": item.campaign_id,
                    "state": CouponState.ISSUED.value,
                    "issued_at": now,
                    "expires_at": expires_at,
                    "version": 1,
                }
            )
        out.issued.append(claimed)
        out.timers.append(
            {
                "kind": EXPIRE_TIMER,
                "key": claimed[0],
                "due_at": expires_at,
                "payload": {},
                "state": TimerState.PENDING.value,
                "attempts": 0,
                "created_at": now,
            }
        )
        out.events.append(
            {
                "coupon_id": claimed[0],
                "action": CouponAction.ISSUED.value,
                "actor": SYSTEM_ACTOR,
                "store_id": None,
                "client_key": None,
                "reason": "",
                "detail": {"campaign": item.campaign_id},
                "at": now,
            }
        )
    return out


def issue_for_campaigns(
    session: Session, wanted: Sequence[CampaignCoupon], customer_id: str, now: datetime
) -> list[tuple[str, str]]:
    """Issue the coupons of one evaluation's grants: ``(coupon id, code)`` per item, in order.

    Pool codes first, as ``issue`` does; new codes, their expiry timers (keyed by the new
    coupon's id, so no lookup) and the audit lines go in one Core insert per table.
    """
    if not wanted:
        return []
    minted = mint_for_campaigns(session, wanted, customer_id, now)
    conn = session.connection()
    if minted.coupons:
        conn.execute(insert(_COUPON), minted.coupons)
    conn.execute(insert(_TIMER), minted.timers)
    conn.execute(insert(_EVENT), minted.events)
    return minted.issued


# ---------------------------------------------------------------- redeem / reverse / void


def find_by_code(session: Session, code: str) -> Coupon:
    """The coupon with ``code``, or NotFound."""
    coupon = session.exec(select(Coupon).where(Coupon.code == normalise_code(code))).first()
    if coupon is None or coupon.state == CouponState.POOL:
        raise NotFound("coupon not found")
    return coupon


def _replay(session: Session, action: CouponAction, client_key: str) -> CouponEvent | None:
    """The earlier event this client key produced, if any."""
    return session.exec(
        select(CouponEvent).where(
            CouponEvent.action == action.value, CouponEvent.client_key == client_key
        )
    ).first()


def _check_store(session: Session, template: CouponTemplate, store: Store) -> None:
    """Refuse redemption in a store the template does not cover."""
    if template.stores and store.id not in template.stores:
        raise Invalid("this coupon is not valid in this store", code="wrong_store")
    if template.region_id and store.region_id != template.region_id:
        raise Invalid("this coupon is not valid in this store", code="wrong_store")


def redeem(
    session: Session, principal: Principal, req: RedeemRequest, now: datetime
) -> tuple[Coupon, bool]:
    """Redeem a coupon at the caller's store; returns (coupon, replayed).

    A repeat of a request with the same ``client_key`` returns the first result.
    """
    store = scoped_store(session, principal, req.store_id)
    prior = _replay(session, CouponAction.REDEEMED, req.client_key)
    if prior is not None:
        return _replayed(session, prior, req.code), True
    coupon = find_by_code(session, req.code)
    template = session.get(CouponTemplate, coupon.template_id)
    assert template is not None  # foreign key
    _check_store(session, template, store)
    if template.min_spend_cents and (req.spend_cents or 0) < template.min_spend_cents:
        raise Invalid(
            f"this coupon needs a spend of at least {template.min_spend_cents} cents",
            code="min_spend",
        )
    changed = session.exec(
        update(Coupon)  # type: ignore[call-overload]
        .where(
            col(Coupon.id) == coupon.id,
            col(Coupon.state) == CouponState.ISSUED,
            col(Coupon.expires_at) > now,
        )
        .values(
            state=CouponState.REDEEMED,
            redeemed_at=now,
            redeemed_store_id=store.id,
            spend_cents=req.spend_cents,
            version=Coupon.version + 1,
        )
    ).rowcount
    if not changed:
        # A concurrent request with the same key may have won while this one waited.
        prior = _replay(session, CouponAction.REDEEMED, req.client_key)
        if prior is not None:
            return _replayed(session, prior, req.code), True
        session.refresh(coupon)
        state = coupon.state
        if state == CouponState.ISSUED:
            state = CouponState.EXPIRED.value  # past expires_at, timer not run yet
        raise Conflict(f"coupon is {state}", code=f"coupon_{state}")
    _audit(
        session,
        coupon.id,
        CouponAction.REDEEMED,
        actor_of(principal),
        now,
        store_id=store.id,
        client_key=req.client_key,
        detail={"spend": req.spend_cents},
    )
    cancel(session, EXPIRE_TIMER, coupon.id)
    session.refresh(coupon)
    log.info("coupon redeemed", extra={"coupon": coupon.id, "store": store.id})
    return coupon, False


def _replayed(session: Session, prior: CouponEvent, code: str) -> Coupon:
    """The coupon an earlier request acted on; a reused key for another coupon is an error."""
    coupon = session.get(Coupon, prior.coupon_id)
    assert coupon is not None  # foreign key
    session.refresh(coupon)
    if coupon.code != normalise_code(code):
        raise Conflict("client_key was already used for another coupon", code="client_key_reused")
    return coupon


def reverse(
    session: Session, principal: Principal, coupon_id: str, req: ReverseRequest, now: datetime
) -> tuple[Coupon, bool]:
    """Undo a redemption (till error, refund); back to issued, or expired if past its date."""
    coupon = session.get(Coupon, coupon_id)
    if coupon is None:
        raise NotFound("coupon not found")
    prior = _replay(session, CouponAction.REVERSED, req.client_key)
    if prior is not None:
        if prior.coupon_id != coupon_id:
            raise Conflict(
                "client_key was already used for another coupon", code="client_key_reused"
            )
        session.refresh(coupon)
        return coupon, True
    redeemed_store = coupon.redeemed_store_id
    if redeemed_store:
        scoped_store(session, principal, redeemed_store)
    changed = session.exec(
        update(Coupon)  # type: ignore[call-overload]
        .where(col(Coupon.id) == coupon_id, col(Coupon.state) == CouponState.REDEEMED)
        .values(
            state=case(
                (col(Coupon.expires_at) <= now, CouponState.EXPIRED.value),
                else_=CouponState.ISSUED.value,
            ),
            redeemed_at=None,
            redeemed_store_id=None,
            spend_cents=None,
            version=Coupon.version + 1,
        )
    ).rowcount
    if not changed:
        session.refresh(coupon)
        raise Conflict(f"coupon is {coupon.state}, not redeemed", code=f"coupon_{coupon.state}")
    session.refresh(coupon)
    _audit(
        session,
        coupon.id,
        CouponAction.REVERSED,
        actor_of(principal),
        now,
        store_id=redeemed_store,
        client_key=req.client_key,
        reason=req.reason,
    )
    if coupon.state == CouponState.ISSUED and coupon.expires_at is not None:
        _reschedule_expiry(session, coupon, now)
    return coupon, False


def _reschedule_expiry(session: Session, coupon: Coupon, now: datetime) -> None:
    """A reversed coupon gets its expiry timer back (the redemption cancelled it)."""
    assert coupon.expires_at is not None
    timer = session.exec(
        select(Timer).where(Timer.kind == EXPIRE_TIMER, Timer.key == coupon.id)
    ).first()
    if timer is None:
        schedule(session, EXPIRE_TIMER, coupon.id, coupon.expires_at, now=now)
        return
    timer.state = TimerState.PENDING
    timer.due_at = coupon.expires_at
    session.add(timer)


def void(
    session: Session, principal: Principal, coupon_id: str, reason: str, now: datetime
) -> Coupon:
    """Void an unredeemed coupon (fraud, mistaken issue); audited, final."""
    if principal.role.value in ("kiosk", "phone"):
        raise Forbidden("voiding a coupon needs staff")
    changed = session.exec(
        update(Coupon)  # type: ignore[call-overload]
        .where(col(Coupon.id) == coupon_id, col(Coupon.state).in_(("issued", "pool")))
        .values(state=CouponState.VOIDED, version=Coupon.version + 1)
    ).rowcount
    coupon = session.get(Coupon, coupon_id)
    if coupon is None:
        raise NotFound("coupon not found")
    session.refresh(coupon)
    if not changed:
        raise Conflict(f"coupon is {coupon.state}", code=f"coupon_{coupon.state}")
    cancel(session, EXPIRE_TIMER, coupon_id)
    _audit(session, coupon_id, CouponAction.VOIDED, actor_of(principal), now, reason=reason)
    return coupon


@timer_handler(EXPIRE_TIMER)
def _expire(session: Session, timer: Timer, now: datetime) -> None:
    """Durable-timer handler: an issued coupon past its date becomes expired."""
    changed = session.exec(
        update(Coupon)  # type: ignore[call-overload]
        .where(
            col(Coupon.id) == timer.key,
            col(Coupon.state) == CouponState.ISSUED,
            col(Coupon.expires_at) <= now,
        )
        .values(state=CouponState.EXPIRED, version=Coupon.version + 1)
    ).rowcount
    if changed:
        _audit(session, timer.key, CouponAction.EXPIRED, SYSTEM_ACTOR, now)


def _audit(
    session: Session,
    coupon_id: str,
    action: CouponAction,
    actor: str,
    now: datetime,
    *,
    store_id: str | None = None,
    client_key: str | None = None,
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit event (flushed now, so a duplicate client key fails here)."""
    session.add(
        CouponEvent(
            coupon_id=coupon_id,
            action=action.value,
            actor=actor,
            store_id=store_id,
            client_key=client_key,
            reason=reason,
            detail=detail or {},
            at=now,
        )
    )
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("client_key was already used", code="client_key_reused") from None


def history(session: Session, coupon_id: str) -> Sequence[CouponEvent]:
    """A coupon's audit trail, oldest first."""
    return session.exec(
        select(CouponEvent).where(CouponEvent.coupon_id == coupon_id).order_by(col(CouponEvent.id))
    ).all()


def customer_coupons(session: Session, customer_id: str) -> Sequence[Coupon]:
    """A customer's coupons, newest first."""
    return session.exec(
        select(Coupon)
        .where(Coupon.customer_id == customer_id)
        .order_by(col(Coupon.issued_at).desc())
    ).all()
