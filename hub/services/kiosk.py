"""Kiosk rules: who stands at the kiosk, their wallet, trials and order pickup, the counter queue
and visit ratings with their report.

A kiosk key acts for one store; what it does for a customer needs that customer at the
kiosk: either the phone session the kiosk holds after a number + code sign-in, or a
recent hearing of their phone token by a node of this store (token presence).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from hub.clock import Clock
from hub.models.auth import Role
from hub.models.checkins import Presence
from hub.models.coupons import CouponPublic
from hub.models.customers import Customer, CustomerUpdate
from hub.models.kiosk import (
    KioskTrialStart,
    KioskWallet,
    PickupPublic,
    QueueTicket,
    RatingCreate,
    RatingReportRow,
    ServiceStanding,
    TicketCalled,
    TicketIssued,
    VisitRating,
)
from hub.models.oao import OaoOrder, OrderStatus, Product
from hub.models.registry import Store
from hub.models.services_catalogue import (
    AcquireChannel,
    ConvertChannel,
    DataService,
    Subscription,
    Trial,
    TrialStart,
    TrialState,
)
from hub.models.types import new_id
from hub.security import HubCrypto
from hub.services import arc, coupons, points
from hub.services.analytics import MIN_GROUP_SIZE, Period, scoped_stores
from hub.services.auth import Principal, authenticate
from hub.services.customers import get_customer, update_customer
from hub.services.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from hub.services.oao import actions

log = logging.getLogger(__name__)

# A counter serves a customer in about this long (store managers' estimate); the wait
# shown is this times the tickets ahead.
MINUTES_PER_CUSTOMER: Final = 4
# Staff call tickets to the counter (call_next); a ticket nobody called within this long
# belongs to someone who gave up and left, so it no longer counts as waiting.
QUEUE_WINDOW: Final = timedelta(hours=2)
# A clerk whose picked ticket another took first (only without row locks) retries this often.
CALL_NEXT_TRIES: Final = 5
# A customer signed in by token presence stands at the kiosk: their phone was heard by a
# node of this store a moment ago. Five minutes covers a long kiosk session; after that
# the customer holds the phone near the kiosk again (a phone-number sign-in needs nothing).
PRESENCE_SIGNIN_WINDOW: Final = timedelta(minutes=5)
# Online orders of these products are things a customer collects over the counter; the
# rest are home visits (installs) or account changes with nothing to pick up.
PICKUP_PRODUCTS: Final = frozenset({Product.SIM_CARD.value, Product.DEVICE.value})
STARS: Final = range(1, 6)


# ---------------------------------------------------------------- who is at the kiosk


def customer_at_kiosk(
    session: Session,
    crypto: HubCrypto,
    clock: Clock,
    store: Store,
    customer_id: str,
    phone_session: str | None,
) -> Customer:
    """The customer if they stand at this store's kiosk; else Forbidden (NotFound if unknown).

    ``phone_session`` is the session token the kiosk holds after a number + code sign-in;
    without one, the customer's phone token must have been heard in this store within
    ``PRESENCE_SIGNIN_WINDOW``.
    """
    customer = get_customer(session, customer_id)
    if phone_session:
        try:
            holder = authenticate(session, crypto, clock, phone_session)
        except Unauthorized:
            raise Forbidden("the customer's kiosk session has ended",
                            code="not_at_kiosk") from None
        if holder.role is not Role.PHONE or holder.customer_id != customer.id:
            raise Forbidden("that session is not this customer's", code="not_at_kiosk")
        return customer
    presence = session.get(Presence, customer.id)
    if (presence is None or presence.store_id != store.id
            or presence.seen_at <= clock.now() - PRESENCE_SIGNIN_WINDOW):
        raise Forbidden("the customer's phone was not heard at this store just now",
                        code="not_at_kiosk")
    return customer


def wallet(session: Session, customer: Customer) -> KioskWallet:
    """The customer's points balance and coupons, newest first."""
    return KioskWallet(
        customer_id=customer.id,
        points=points.balance(session, customer.id),
        coupons=[CouponPublic.model_validate(c, from_attributes=True)
                 for c in coupons.customer_coupons(session, customer.id)],
    )


# ---------------------------------------------------------------- trials (ARC at the kiosk)


def service_standing(session: Session, customer: Customer) -> list[ServiceStanding]:
    """For every active catalogue service: available, on trial, trial ended, or subscribed."""
    services = session.exec(select(DataService).where(DataService.active)).all()
    held = set(session.exec(
        select(Subscription.service_id).where(Subscription.customer_id == customer.id)).all())
    trials: dict[str, Trial] = {}
    for trial in session.exec(select(Trial).where(Trial.customer_id == customer.id)
                              .order_by(col(Trial.started_at))).all():
        trials[trial.service_id] = trial  # the newest trial of each service wins
    standing = []
    for service in services:
        trial = trials.get(service.id)
        if service.id in held:
            state = "subscribed"
        elif trial is not None and trial.state == TrialState.ACTIVE.value:
            state = "trial"
        elif trial is not None:
            state = "trial_ended"
        else:
            state = "available"
        standing.append(ServiceStanding(
            service_id=service.id, state=state,
            trial_id=trial.id if trial is not None else None,
            ends_at=trial.ends_at if trial is not None else None,
        ))
    return standing


def start_trial(session: Session, store: Store, customer: Customer, body: KioskTrialStart,
                now: datetime) -> Trial:
    """Start a free trial at the kiosk; ARC checks the fit (handset, held, tried, consent).

    A ticked consent box is recorded with the trial; if the trial is refused the whole
    request rolls back and the consent with it.
    """
    if body.consent_sms and not customer.consent_marketing_sms:
        update_customer(session, customer, CustomerUpdate(consent_marketing_sms=True), now)
    spec = TrialStart(
        service_id=body.service_id, customer_id=customer.id, store_id=store.id,
        channel=AcquireChannel.KIOSK, handset=[h.strip().lower() for h in body.handset],
    )
    return arc.start_trial(session, spec, now)


def convert_trial(session: Session, customer: Customer, trial_id: str, now: datetime) -> Trial:
    """Convert the customer's own trial to the paid service (channel: kiosk)."""
    trial = session.get(Trial, trial_id)
    if trial is None or trial.customer_id != customer.id:
        raise NotFound(f"trial {trial_id!r} not found")
    return arc.convert(session, trial, ConvertChannel.KIOSK, now)


# ---------------------------------------------------------------- online-order pickup


def pick_up(session: Session, principal: Principal, store: Store, customer: Customer,
            order_code: str, now: datetime) -> PickupPublic:
    """Check the customer in for an online order ready at this store; staff bring it over.

    Ready means the store accepted the order; checking in starts it (OAO's own move,
    accepted -> in progress, audited with the kiosk as actor). Asking again is harmless.
    Any order that is not this customer's, or not at this store, is "not found".
    """
    order = session.exec(
        select(OaoOrder).where(OaoOrder.client_order_key == order_code.strip())
    ).first()
    if order is None or order.store_id != store.id or order.customer_id != customer.id:
        raise NotFound("no order with that code for this customer at this store",
                       code="order_not_found")
    if order.product not in PICKUP_PRODUCTS:
        raise Invalid(f"a {order.product} order has nothing to pick up", code="not_for_pickup")
    already = order.status == OrderStatus.IN_PROGRESS.value
    if order.status == OrderStatus.ACCEPTED.value:
        order = actions.start(session, principal, order.id, now)
        log.info("order checked in for pickup", extra={"order_id": order.id,
                                                       "store_id": store.id})
    elif order.status == OrderStatus.COMPLETED.value:
        raise Conflict(f"order {order.id} was already handed over", code="already_collected")
    elif not already:
        raise Conflict(f"order {order.id} is {order.status}, not ready for pickup",
                       code="not_ready")
    return PickupPublic(order_id=order.id, order_code=order.client_order_key,
                        product=order.product, status=order.status, already_checked_in=already)


# ---------------------------------------------------------------- the counter queue


def _local_day(store: Store, now: datetime) -> str:
    """The store's local date of ``now``, ISO."""
    return now.astimezone(ZoneInfo(store.timezone)).date().isoformat()


def _waiting(session: Session, store: Store, now: datetime) -> int:
    """Tickets of the store nobody called yet, issued within the queue window."""
    return int(session.exec(
        select(func.count()).select_from(QueueTicket).where(
            QueueTicket.store_id == store.id,
            col(QueueTicket.called_at).is_(None),
            col(QueueTicket.issued_at) > now - QUEUE_WINDOW,
        )
    ).one())


def take_ticket(session: Session, store: Store, customer_id: str | None,
                now: datetime) -> TicketIssued:
    """The next number of the store's day, with how many wait ahead and the wait."""
    if customer_id is not None:
        customer_id = get_customer(session, customer_id).id
    day = _local_day(store, now)
    last = session.exec(
        select(func.max(QueueTicket.number)).where(
            QueueTicket.store_id == store.id, QueueTicket.day == day
        )
    ).one()
    ahead = _waiting(session, store, now)
    serving = session.exec(
        select(QueueTicket.number).where(
            QueueTicket.store_id == store.id, QueueTicket.day == day,
            col(QueueTicket.called_at).is_not(None),
        ).order_by(col(QueueTicket.called_at).desc(), col(QueueTicket.number).desc()).limit(1)
    ).first()
    ticket = QueueTicket(
        id=new_id("qtk"), store_id=store.id, day=day, number=int(last or 0) + 1,
        customer_id=customer_id, issued_at=now,
    )
    session.add(ticket)
    session.flush()
    return TicketIssued(
        id=ticket.id, number=ticket.number, ahead=ahead,
        estimated_wait_min=ahead * MINUTES_PER_CUSTOMER, issued_at=now, now_serving=serving,
    )


def call_next(session: Session, store: Store, now: datetime) -> TicketCalled:
    """Call the lowest waiting ticket to the counter; of clerks at once each gets another.

    The pick locks its row and skips rows other clerks hold (PostgreSQL; SQLite serialises
    writers), so concurrent clerks pick different tickets instead of racing for the lowest
    one; the claim is still a conditional UPDATE (still uncalled), so one ticket is never
    called twice whatever the isolation.
    """
    for _ in range(CALL_NEXT_TRIES):
        ticket = session.exec(
            select(QueueTicket).where(
                QueueTicket.store_id == store.id,
                col(QueueTicket.called_at).is_(None),
                col(QueueTicket.issued_at) > now - QUEUE_WINDOW,
            ).order_by(col(QueueTicket.issued_at), col(QueueTicket.number))
            .limit(1).with_for_update(skip_locked=True)
        ).first()
        if ticket is None:
            break
        claimed = session.execute(
            update(QueueTicket)
            .where(col(QueueTicket.id) == ticket.id, col(QueueTicket.called_at).is_(None))
            .values(called_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if claimed == 1:
            return TicketCalled(id=ticket.id, number=ticket.number,
                                customer_id=ticket.customer_id,
                                waiting=_waiting(session, store, now))
    return TicketCalled(id=None, number=None, customer_id=None,
                        waiting=_waiting(session, store, now))


# ---------------------------------------------------------------- visit ratings


def rate_visit(session: Session, store: Store, body: RatingCreate, now: datetime) -> VisitRating:
    """Record a 1-5 rating (and comment) of today's visit to ``store``."""
    customer_id = get_customer(session, body.customer_id).id if body.customer_id else None
    rating = VisitRating(
        id=new_id("rat"), store_id=store.id, customer_id=customer_id, stars=body.stars,
        comment=body.comment.strip(), at=now,
    )
    session.add(rating)
    session.flush()
    return rating


def rating_report(session: Session, principal: Principal, period: Period,
                  store_id: str | None) -> list[RatingReportRow]:
    """Ratings per store and local day: count, mean and 1-5 distribution.

    A store-day with fewer than ``MIN_GROUP_SIZE`` ratings shows its count only: with a
    handful of raters the spread could tell who gave which score.
    """
    stores = scoped_stores(session, principal, store_id)
    if not stores:
        return []
    lo, hi = period.utc_bounds()
    groups: dict[tuple[str, date], Counter[int]] = defaultdict(Counter)
    rows: Sequence[tuple[str, int, datetime]] = session.exec(
        select(VisitRating.store_id, VisitRating.stars, VisitRating.at).where(
            col(VisitRating.store_id).in_(list(stores)),
            col(VisitRating.at) >= lo, col(VisitRating.at) < hi,
        )
    ).all()
    for sid, stars, at in rows:
        day = at.astimezone(ZoneInfo(stores[sid].timezone)).date()
        if period.contains(day):
            groups[(sid, day)][stars] += 1
    report = []
    for (sid, day), counts in sorted(groups.items()):
        n = sum(counts.values())
        shown = n >= MIN_GROUP_SIZE
        report.append(RatingReportRow(
            store_id=sid, day=day.isoformat(), ratings=n, suppressed=not shown,
            mean_stars=round(sum(s * c for s, c in counts.items()) / n, 2) if shown else None,
            distribution={str(s): counts[s] for s in STARS} if shown else None,
        ))
    return report
