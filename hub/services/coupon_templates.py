"""Coupon templates (value / percent / free item, stores, validity) and imported code pools."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from hub.models.coupons import (
    Coupon,
    CouponState,
    CouponTemplate,
    CouponTemplateCreate,
    PoolImported,
)
from hub.models.types import new_id
from hub.services.auth import Principal, scoped_store
from hub.services.coupons import normalise_code
from hub.services.errors import Invalid, NotFound

log = logging.getLogger(__name__)
# Codes looked up per query while importing a pool: keeps IN lists well below driver limits.
IMPORT_CHUNK = 500


def create_template(
    session: Session, principal: Principal, spec: CouponTemplateCreate, now: datetime
) -> CouponTemplate:
    """A coupon template in the caller's region (regional ops) or anywhere (admin)."""
    if principal.region_id and spec.region_id != principal.region_id:
        raise NotFound(f"region {spec.region_id!r} not found")
    for store_id in spec.stores:
        store = scoped_store(session, principal, store_id)
        if spec.region_id and store.region_id != spec.region_id:
            raise Invalid(f"store {store_id!r} is outside region {spec.region_id!r}")
    template = CouponTemplate(id=new_id("tpl"), created_at=now, **spec.model_dump(mode="json"))
    session.add(template)
    return template


def get_template(session: Session, principal: Principal, template_id: str) -> CouponTemplate:
    """A template in the caller's scope, or NotFound."""
    template = session.get(CouponTemplate, template_id)
    if template is None or not _sees_template(principal, template):
        raise NotFound(f"coupon template {template_id!r} not found")
    return template


def _sees_template(principal: Principal, template: CouponTemplate) -> bool:
    """Admins see all templates; regional callers those of their region (or global ones)."""
    return principal.region_id is None or template.region_id in (None, principal.region_id)


def list_templates(session: Session, principal: Principal) -> Sequence[CouponTemplate]:
    """Templates the caller may see."""
    rows = session.exec(select(CouponTemplate).order_by(col(CouponTemplate.created_at))).all()
    return [t for t in rows if _sees_template(principal, t)]


def import_pool(
    session: Session, template: CouponTemplate, codes: list[str], now: datetime
) -> PoolImported:
    """Add pre-made codes to a template's pool; codes already known anywhere are skipped."""
    wanted = list(dict.fromkeys(normalise_code(c) for c in codes))
    known: set[str] = set()
    for start in range(0, len(wanted), IMPORT_CHUNK):
        chunk = wanted[start : start + IMPORT_CHUNK]
        known.update(session.exec(select(Coupon.code).where(col(Coupon.code).in_(chunk))).all())
    fresh = [c for c in wanted if c not in known]
    for code in fresh:
        session.add(
            Coupon(id=new_id("cpn"), code=code, template_id=template.id, state=CouponState.POOL)
        )
    session.flush()
    log.info("coupon pool imported", extra={"template": template.id, "count": len(fresh)})
    return PoolImported(imported=len(fresh), duplicates=len(codes) - len(fresh))
