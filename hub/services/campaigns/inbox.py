"""The customer's inbox: every grant campaigns gave them, newest first, with read marks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from hub.models.campaigns import CampaignGrant, GrantOutcome, GrantPublic
from hub.models.coupons import Coupon
from hub.services.errors import NotFound

# The inbox shows this many grants: a long scroll on a phone, a short one on a kiosk.
INBOX_LIMIT = 100


def inbox(
    session: Session, customer_id: str, store_id: str | None = None, unseen_only: bool = False
) -> list[GrantPublic]:
    """The customer's grants (only those given at ``store_id`` when set), codes included."""
    query = select(CampaignGrant, Coupon.code).outerjoin(
        Coupon, col(Coupon.id) == col(CampaignGrant.coupon_id)
    )
    query = query.where(
        CampaignGrant.customer_id == customer_id,
        CampaignGrant.outcome == GrantOutcome.GRANTED.value,
    )
    if store_id is not None:
        query = query.where(CampaignGrant.store_id == store_id)
    if unseen_only:
        query = query.where(col(CampaignGrant.seen_at).is_(None))
    rows: Sequence[tuple[CampaignGrant, str | None]] = session.exec(
        query.order_by(col(CampaignGrant.at).desc(), col(CampaignGrant.id).desc()).limit(
            INBOX_LIMIT
        )
    ).all()
    return [
        GrantPublic.model_validate({**grant.model_dump(), "coupon_code": code})
        for grant, code in rows
    ]


def mark_seen(session: Session, customer_id: str, grant_id: str, now: datetime) -> GrantPublic:
    """Mark one of the customer's grants as read (idempotent: the first time stands)."""
    grant = session.get(CampaignGrant, grant_id)
    if grant is None or grant.customer_id != customer_id:
        raise NotFound("grant not found")
    if grant.seen_at is None:
        grant.seen_at = now
        session.add(grant)
    return GrantPublic.model_validate(grant.model_dump())
