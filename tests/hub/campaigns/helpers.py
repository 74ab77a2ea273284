"""Builders for the campaign suites: customers, templates, live campaigns, visits, threads."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.auth import Role
from hub.models.campaigns import Campaign, CampaignCreate, CampaignState
from hub.models.checkins import Visit
from hub.models.coupons import CouponTemplate, CouponTemplateCreate
from hub.models.customers import Customer, CustomerTag
from hub.services.auth import Principal
from hub.services.campaigns import lifecycle
from hub.services.coupon_templates import create_template
from tests.hub.factories import CRYPTO

T = TypeVar("T")
ADMIN = Principal(role=Role.ADMIN, key_id="key_admin")
APPROVER = Principal(role=Role.ADMIN, key_id="key_approver")
GULOU, TAIJIANG, SIMING = "fz-gulou", "fz-taijiang", "xm-siming"
# Generous bound for a thread pool of concurrent requests on a 2-core shared machine.
THREAD_JOIN_S = 120.0
_visit_ids = itertools.count(1)


def customer(engine: Engine, clock: ManualClock, cid: str, **attrs: Any) -> str:
    """Insert a customer with the given attributes/consents; tags as ``tags=["kind:name"]``."""
    tags = attrs.pop("tags", [])
    with Session(engine) as session:
        session.add(
            Customer(
                id=cid,
                phone_hash=f"h-{cid}",
                phone_enc=CRYPTO.encrypt("+8613000000000"),
                created_at=clock.now(),
                **attrs,
            )
        )
        session.flush()
        for tag in tags:
            kind, name = tag.split(":")
            session.add(CustomerTag(customer_id=cid, kind=kind, name=name, created_at=clock.now()))
        session.commit()
    return cid


def template(engine: Engine, clock: ManualClock, **overrides: Any) -> str:
    """A 10%-off template valid 14 days everywhere."""
    spec = {"name": "10% off", "kind": "percent", "value": 10, "valid_days": 14, **overrides}
    with Session(engine) as session:
        tpl: CouponTemplate = create_template(
            session, ADMIN, CouponTemplateCreate.model_validate(spec), clock.now()
        )
        session.commit()
        return tpl.id


def live_campaign(engine: Engine, clock: ManualClock, **spec: Any) -> str:
    """Create, approve and launch a campaign; ``spec`` is a CampaignCreate body."""
    body = {"name": "c", "trigger": "checkin", "reward": {"kind": "points", "points": 10}, **spec}
    with Session(engine) as session:
        campaign = lifecycle.create(
            session, ADMIN, CampaignCreate.model_validate(body), clock.now()
        )
        session.flush()
        lifecycle.transition(
            session, APPROVER, campaign.id, lifecycle.Transition.APPROVE, clock.now()
        )
        lifecycle.transition(session, ADMIN, campaign.id, lifecycle.Transition.LAUNCH, clock.now())
        session.commit()
        assert campaign.state == CampaignState.LIVE.value
        return campaign.id


def campaign_row(engine: Engine, campaign_id: str) -> Campaign:
    """The campaign as stored now."""
    with Session(engine) as session:
        row = session.get(Campaign, campaign_id)
        assert row is not None
        return row


def visit(
    engine: Engine, customer_id: str, store_id: str, started: datetime, minutes: int = 10
) -> str:
    """A past visit of ``customer_id`` to ``store_id``."""
    vid = f"vis_{customer_id}_{next(_visit_ids)}"
    with Session(engine) as session:
        session.add(
            Visit(
                id=vid,
                customer_id=customer_id,
                store_id=store_id,
                started_at=started,
                last_seen_at=started + timedelta(minutes=minutes),
            )
        )
        session.commit()
    return vid


def run_threads(n: int, work: Callable[[int], T]) -> list[T | BaseException]:
    """Run ``work(i)`` in ``n`` threads released together; results (or exceptions) by index."""
    barrier = threading.Barrier(n)
    results: list[T | BaseException] = [RuntimeError("did not run")] * n

    def runner(i: int) -> None:
        """Wait for the others, then run and keep the result or the exception."""
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:  # collected, asserted by the test
            results[i] = exc

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_JOIN_S)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    return results


def stores(engine: Engine) -> None:
    """Regions fz/xm and three stores with zones (no nodes: the campaign suites need none)."""
    from hub.models.registry import Region, Store, Zone

    with Session(engine) as session:
        session.add(Region(id="fz", name="Fuzhou"))
        session.add(Region(id="xm", name="Xiamen"))
        session.flush()
        for sid, region in ((GULOU, "fz"), (TAIJIANG, "fz"), (SIMING, "xm")):
            session.add(Store(id=sid, region_id=region, name=sid, latitude=26.0, longitude=119.3))
        session.flush()
        for zone in ("door", "phones", "counter"):
            session.add(Zone(id=f"{GULOU}-{zone}", store_id=GULOU, name=zone))
        session.commit()
