"""Rows the authorisation matrix (tests/hub/api/test_authz_matrix.py) needs for our routes."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.campaigns import Campaign, CampaignGrant
from hub.models.coupons import Coupon, CouponTemplate
from hub.models.points import PointsKind
from hub.services import points

_ids = itertools.count(1)
CAMPAIGN_BODY: dict[str, Any] = {
    "name": "Matrix",
    "region_id": "fz",
    "trigger": "checkin",
    "where": {"stores": ["fz-gulou"]},
    "reward": {"kind": "points", "points": 5},
}


def uid(prefix: str) -> str:
    """A unique token for bodies that must not repeat (client keys, pool codes)."""
    return f"{prefix}-{next(_ids):06d}"


def campaign_world(engine: Engine, clock: ManualClock) -> None:
    """Fixed-id rows in region fz: template, draft campaign, two coupons, a grant, points."""
    now = clock.now()
    with Session(engine) as session:
        session.add(
            CouponTemplate(
                id="tpl_fz", name="fz", kind="value", value=500, region_id="fz", created_at=now
            )
        )
        session.flush()
        session.add(
            Campaign(
                id="cmp_fz",
                name="fz",
                region_id="fz",
                trigger="checkin",
                reward_kind="points",
                points=5,
                created_by="key_author",
                created_at=now,
                updated_at=now,
            )
        )
        for cid, code in (("cpn_fz", "FZMATRIX0001"), ("cpn_fz2", "FZMATRIX0002")):
            session.add(
                Coupon(
                    id=cid,
                    code=code,
                    template_id="tpl_fz",
                    customer_id="cus_a",
                    state="issued",
                    issued_at=now,
                    expires_at=now.replace(year=now.year + 1),
                )
            )
        session.flush()
        session.add(
            CampaignGrant(
                id="grt_fz",
                campaign_id="cmp_fz",
                customer_id="cus_a",
                store_id="fz-gulou",
                source_event="matrix",
                trigger="checkin",
                outcome="granted",
                reward_kind="points",
                points=5,
                store_day=now.date().isoformat(),
                at=now,
            )
        )
        points.move(session, "cus_b", PointsKind.EARN, 1000, "matrix-earn", now)
        session.commit()
