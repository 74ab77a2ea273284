"""Orders from online channels: idempotent intake, dispatch with a recorded decision, escalation."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, col, select

from hub.models.auth import Role
from hub.models.customers import Customer
from hub.models.oao import (
    DispatchOutcome,
    OaoDispatch,
    OaoOrder,
    OaoRegionPolicy,
    OaoTransition,
    OrderCreate,
    OrderHistory,
    OrderPublic,
    OrderStatus,
)
from hub.models.registry import Region
from hub.models.types import new_id
from hub.services import timers
from hub.services.auth import REGION_ROLES, STORE_ROLES, Principal
from hub.services.bulk import BulkSql
from hub.services.errors import Conflict, Invalid, NotFound
from hub.services.oao import config, deadlines, states
from hub.services.oao.dispatch import (
    Decision,
    DispatchRequest,
    NoEligibleStore,
    PolicyView,
    StoreSet,
)
from hub.services.oao.states import OPEN_AT_STORE

log = logging.getLogger(__name__)

# Fields that must match when a channel resends a client order key (a true retry).
_IDENTITY_FIELDS = ("channel", "product", "region_id", "customer_id", "latitude", "longitude")
MAX_PAGE = 500
ALERT_NO_STORE = "oao_no_store"
ALERT_ESCALATED = "oao_escalated"
# Values per IN list: under SQLite's variable limit, and few round trips per burst.
IN_CHUNK = 2_000


def actor_of(principal: Principal) -> str:
    """The audit name of a caller: role, then store/region, then key (never a person's name)."""
    scope = principal.store_id or principal.region_id or "-"
    return f"{principal.role.value}:{scope}:{principal.key_id or '-'}"


def create_order(
    session: Session, principal: Principal, spec: OrderCreate, now: datetime
) -> tuple[OaoOrder, bool]:
    """Take a channel's order and dispatch it; a resent client key returns the first order.

    Returns (order, created). A key reused for a different order is a Conflict. The
    same code as a burst (``create_orders``), run for one order.
    """
    [(order_id, created)] = create_orders(session, principal, [spec], now)
    order = session.get(OaoOrder, order_id)
    assert order is not None  # inserted or found in this transaction
    return order, created


def create_orders(
    session: Session, principal: Principal, specs: Sequence[OrderCreate], now: datetime
) -> list[tuple[str, bool]]:
    """Take a burst of orders and dispatch each, in one transaction: [(order id, created)].

    Orders are decided in the given order, each seeing the store loads the ones before
    it left (exactly as one call per order would), and every row (orders, audit,
    decisions, SLA timers, alerts) is written with one statement per table. A client key
    sent again (earlier, or twice in ``specs``) returns the first order. Any bad spec
    (unknown region or customer, a key reused for another order) fails the whole burst
    with an error naming it, before anything is written. Should a concurrent request
    insert one of the keys first, the burst is redone and returns that order.
    """
    if not specs:
        return []
    for _ in range(_KEY_RACE_RETRIES):
        try:
            with session.begin_nested():
                return _create_orders(session, principal, specs, now)
        except _KeyRace:
            continue  # rolled back to the savepoint; the other request's order is visible now
    raise Conflict("orders with these client keys are being created concurrently; retry")


class _KeyRace(Exception):
    """A concurrent request inserted one of the burst's client keys first."""


_KEY_RACE_RETRIES = 3


def _label(specs: Sequence[OrderCreate], i: int, message: str) -> str:
    """An error message, naming the order when it is one of a burst."""
    return message if len(specs) == 1 else f"order {i} ({specs[i].client_order_key}): {message}"


def _create_orders(
    session: Session, principal: Principal, specs: Sequence[OrderCreate], now: datetime
) -> list[tuple[str, bool]]:
    """``create_orders`` inside its savepoint; raises _KeyRace when a key was taken meanwhile."""
    region_ids = sorted({s.region_id for s in specs})
    regions = set(
        session.execute(select(Region.id).where(col(Region.id).in_(region_ids))).scalars()
    )
    customer_ids = sorted({s.customer_id for s in specs if s.customer_id is not None})
    customers: set[str] = set()
    for part in chunks(customer_ids):
        customers.update(
            session.execute(select(Customer.id).where(col(Customer.id).in_(part))).scalars()
        )
    for i, spec in enumerate(specs):
        if spec.region_id not in regions or not principal.sees_region(spec.region_id):
            raise NotFound(_label(specs, i, f"region {spec.region_id!r} not found"))
        if spec.customer_id is not None and spec.customer_id not in customers:
            raise Invalid(
                _label(specs, i, f"customer {spec.customer_id!r} does not exist"),
                code="unknown_customer",
            )
    existing = _by_keys(session, [s.client_order_key for s in specs])
    run = DispatchRun(session, now)
    actor = actor_of(principal)
    results: list[tuple[str, bool]] = []
    first: dict[str, tuple[str, OrderCreate]] = {}
    received: list[tuple[Ticket, str]] = []
    for i, spec in enumerate(specs):
        key = spec.client_order_key
        try:
            if key in existing:
                results.append((_same_order(existing[key], spec).id, False))
                continue
            if key in first:
                _same_order(first[key][1], spec)
                results.append((first[key][0], False))
                continue
        except Conflict as exc:
            raise Conflict(_label(specs, i, str(exc)), code=exc.code) from None
        ticket = run.receive(spec, actor)
        first[key] = (ticket.id, spec)
        results.append((ticket.id, True))
        received.append((ticket, ""))
    run.dispatch_all(received, "system:dispatch")
    run.flush()
    if len(first) == 1:
        log.info("order received", extra={"order_id": next(iter(first.values()))[0]})
    elif first:
        log.info("orders received", extra={"count": len(first)})
    return results


def orders_by_id(session: Session, ids: Sequence[str]) -> list[OaoOrder]:
    """The orders with these ids, in the given order (an id may repeat)."""
    found: dict[str, OaoOrder] = {}
    unique = sorted(set(ids))
    for part in chunks(unique):
        found.update(
            (o.id, o) for o in session.exec(select(OaoOrder).where(col(OaoOrder.id).in_(part)))
        )
    return [found[i] for i in ids]


def _by_keys(session: Session, keys: Sequence[str]) -> dict[str, Any]:
    """Orders already stored under these client keys: key -> (id and identity fields)."""
    found: dict[str, Any] = {}
    columns = [col(OaoOrder.id), col(OaoOrder.client_order_key)] + [
        getattr(OaoOrder, name) for name in _IDENTITY_FIELDS
    ]
    unique = sorted(set(keys))
    for part in chunks(unique):
        for row in session.execute(
            select(*columns).where(col(OaoOrder.client_order_key).in_(part))
        ):
            found[row.client_order_key] = row
    return found


def _same_order(existing: Any, spec: OrderCreate) -> Any:
    """``existing`` if ``spec`` is a retry of it, else Conflict."""
    for name in _IDENTITY_FIELDS:
        if getattr(existing, name) != getattr(spec, name):
            raise Conflict(
                f"client_order_key {spec.client_order_key!r} was used for another "
                f"order ({name} differs)",
                code="client_key_reused",
            )
    return existing


def chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    """``items`` in slices of at most ``size`` (IN lists under SQLite's variable limit)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ---------------------------------------------------------------- dispatch


@dataclass(slots=True, eq=False)
class Ticket:
    """An order's dispatch-relevant columns as plain values while a run decides for it."""

    id: str
    region_id: str
    latitude: float
    longitude: float
    product: str
    channel: str
    priority: str
    directed_store_id: str | None
    status: str
    store_id: str | None
    hops: int
    dispatched_at: datetime | None = None
    escalation_reason: str | None = None

    # Columns to select to build a ticket from a row (``from_row``), in field order.
    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id",
        "region_id",
        "latitude",
        "longitude",
        "product",
        "channel",
        "priority",
        "directed_store_id",
        "status",
        "store_id",
        "hops",
        "dispatched_at",
        "escalation_reason",
    )

    @classmethod
    def of(cls, order: OaoOrder) -> Ticket:
        """The ticket of an ORM order."""
        return cls(*(getattr(order, name) for name in cls.COLUMNS))

    @classmethod
    def from_row(cls, row: Any) -> Ticket:
        """The ticket of a row of ``COLUMNS`` (same order as the fields)."""
        return cls(*row)


class DispatchRun:
    """Dispatch decisions over one or many orders, written set-based at ``flush``.

    Every rule of dispatching lives here once: the region's policy and hop limit, the
    stores a re-dispatch excludes, the decision record with its candidates, the audited
    transition, the SLA timers of an offer, escalation with its ops alert. A single
    order goes through a run of one (``dispatch``, ``offer``, ``create_order``); a burst
    (``create_orders``, the SLA batch handlers) through one run. A region's policy and
    store set are read once per run, and store loads then follow the run's own offers
    in memory, so each decision sees the loads a one-order-at-a-time run would have seen.
    """

    def __init__(self, session: Session, now: datetime) -> None:
        """Start an empty run in ``session``'s transaction, deciding at ``now``."""
        self.session = session
        self.now = now
        self._policies: dict[str, OaoRegionPolicy] = {}
        self._views: dict[str, PolicyView] = {}
        self._store_sets: dict[str, StoreSet] = {}
        self._excluded: dict[str, frozenset[str]] = {}
        self._new: dict[str, tuple[dict[str, Any], Ticket]] = {}
        self._moved: dict[str, Ticket] = {}
        self._transitions: list[dict[str, Any]] = []
        self._offers: list[dict[str, Any]] = []
        self._timers: list[tuple[str, str, datetime, dict[str, Any]]] = []
        self._alerts: list[dict[str, Any]] = []

    # -- what the run reads once

    def policy(self, region_id: str) -> OaoRegionPolicy:
        """The region's policy (read once per run)."""
        policy = self._policies.get(region_id)
        if policy is None:
            policy = self._policies[region_id] = config.get_policy(self.session, region_id)
            self._views[region_id] = config.policy_view(policy)
        return policy

    def store_set(self, region_id: str) -> StoreSet:
        """The region's stores with their loads (read once per run, then kept in step)."""
        stores = self._store_sets.get(region_id)
        if stores is None:
            self.session.flush()
            stores = self._store_sets[region_id] = config.build_store_set(
                self.session, region_id, self.now
            )
        return stores

    def _load_exclusions(self, tickets: Sequence[Ticket]) -> None:
        """Stores that declined or let each order time out (one query for them all)."""
        ids = [t.id for t in tickets if t.hops and t.id not in self._excluded]
        if not ids:
            return
        self.session.flush()
        found: dict[str, set[str]] = {}
        for part in chunks(ids):
            rows = self.session.execute(
                select(OaoDispatch.order_id, OaoDispatch.store_id).where(  # type: ignore[call-overload]
                    col(OaoDispatch.order_id).in_(part),
                    col(OaoDispatch.outcome).in_(_EXCLUDING),
                )
            )
            for order_id, store_id in rows:
                if store_id:
                    found.setdefault(order_id, set()).add(store_id)
        for order_id in ids:
            self._excluded[order_id] = frozenset(found.get(order_id, ()))

    def _prime(self, tickets: Sequence[Ticket]) -> None:
        """Nearest-store queries of a burst, per region, in one go (``StoreSet.prime``)."""
        if len(tickets) < 2:
            return
        by_region: dict[str, list[DispatchRequest]] = {}
        for t in tickets:
            by_region.setdefault(t.region_id, []).append(_request(t))
        for region_id, requests in by_region.items():
            self.policy(region_id)
            self.store_set(region_id).prime(requests, self._views[region_id])

    # -- the rules

    def receive(self, spec: OrderCreate, actor: str) -> Ticket:
        """A new order from a channel (status received, audited); written at flush."""
        ticket = Ticket(
            new_id("ord"),
            spec.region_id,
            spec.latitude,
            spec.longitude,
            spec.product.value,
            spec.channel.value,
            spec.priority.value,
            spec.directed_store_id,
            OrderStatus.RECEIVED.value,
            None,
            0,
        )
        row = {
            "id": ticket.id,
            "client_order_key": spec.client_order_key,
            "channel": ticket.channel,
            "product": ticket.product,
            "priority": ticket.priority,
            "customer_id": spec.customer_id,
            "region_id": spec.region_id,
            "address": spec.address,
            "latitude": spec.latitude,
            "longitude": spec.longitude,
            "window_start": spec.window_start,
            "window_end": spec.window_end,
            "directed_store_id": spec.directed_store_id,
            "created_at": self.now,
            "accepted_at": None,
            "finished_at": None,
        }
        self._new[ticket.id] = (row, ticket)
        self._transitions.append(
            states.transition_row(
                ticket.id,
                None,
                OrderStatus.RECEIVED,
                actor,
                f"from channel {spec.channel.value}",
                self.now,
            )
        )
        return ticket

    def dispatch_all(
        self, items: Sequence[tuple[Ticket, str]], actor: str
    ) -> list[Decision | None]:
        """``dispatch`` each (ticket, cause) in turn; exclusions are read in one query and
        each region's first nearest-store queries are answered in one vectorised query."""
        tickets = [t for t, _ in items]
        self._load_exclusions(tickets)
        self._prime(tickets)
        return [self.dispatch(t, actor, cause) for t, cause in items]

    def dispatch(self, t: Ticket, actor: str, cause: str = "") -> Decision | None:
        """Offer the order to the store its region's policy picks, or escalate; record why.

        ``cause`` (why it is dispatched again: a rejection, a timeout) heads the audit
        reason. Returns the decision, or None when the order went to the escalation queue.
        """
        lead = f"{cause}; " if cause else ""
        policy = self.policy(t.region_id)
        if t.hops >= policy.hop_limit:
            self.escalate(
                t, actor, f"{lead}hop limit {policy.hop_limit} reached without a store accepting"
            )
            return None
        store_set = self.store_set(t.region_id)
        request = _request(t)
        excluded: frozenset[str] = frozenset()
        if t.hops:
            found = self._excluded.get(t.id)
            if found is None:
                self._load_exclusions([t])
                found = self._excluded[t.id]
            excluded = found
        try:
            decision = store_set.choose(request, self._views[t.region_id], excluded)
        except NoEligibleStore as exc:
            self._record(t, exc.decision, DispatchOutcome.WITHDRAWN)
            nearest = next(
                (c.store_id for c in exc.decision.candidates if c.store_id in store_set.by_id),
                None,
            )
            self.escalate(
                t,
                actor,
                f"{lead}no eligible store: {exc.decision.reason}",
                alert_kind=ALERT_NO_STORE,
                alert_store=nearest,
            )
            return None
        assert decision.store_id is not None  # choose() raises rather than return no store
        self.offer(t, decision, actor, cause)
        return decision

    def offer(self, t: Ticket, decision: Decision, actor: str, cause: str = "") -> None:
        """Give the order to ``decision.store_id``: move, record, arm the SLA timers."""
        assert decision.store_id is not None
        previous, was = t.store_id, t.status
        self._move(
            t,
            OrderStatus.DISPATCHED,
            actor,
            (f"{cause}; " if cause else "")
            + f"{decision.policy}: {decision.reason}"
            + (f" (was {previous})" if previous else ""),
        )
        self._shift_load(t.region_id, previous if was in OPEN_AT_STORE else None, decision.store_id)
        t.store_id = decision.store_id
        t.hops += 1
        t.dispatched_at = self.now
        self._touch(t)
        self._record(t, decision, DispatchOutcome.PENDING)
        self._timers.extend(
            deadlines.offer_timers(
                self.policy(t.region_id), t.id, t.priority, t.hops, decision.store_id, self.now
            )
        )

    def escalate(
        self,
        t: Ticket,
        actor: str,
        reason: str,
        alert_kind: str = ALERT_ESCALATED,
        alert_store: str | None = None,
    ) -> None:
        """Send the order to a person (the escalation queue) and alert the region's ops."""
        previous, was = t.store_id, t.status
        self._move(t, OrderStatus.ESCALATED, actor, reason)
        self._shift_load(t.region_id, previous if was in OPEN_AT_STORE else None, None)
        t.escalation_reason = reason[:500]
        t.store_id = None
        self._touch(t)
        self._alerts.append(
            {
                "kind": alert_kind,
                "node_id": None,
                "store_id": alert_store or previous,
                "detail": f"order {t.id} (region {t.region_id}) escalated: {reason}"[:500],
                "created_at": self.now,
                "resolved_at": None,
            }
        )
        log.warning("order escalated", extra={"order_id": t.id, "region_id": t.region_id})

    def _move(self, t: Ticket, to: OrderStatus, actor: str, reason: str) -> None:
        """Check and apply a move of the state machine, with its audit row."""
        states.check_move(t.id, t.status, to)
        self._transitions.append(states.transition_row(t.id, t.status, to, actor, reason, self.now))
        t.status = to.value

    def _shift_load(self, region_id: str, from_store: str | None, to_store: str | None) -> None:
        """Keep the run's store loads in step with an order leaving / joining a store."""
        stores = self._store_sets.get(region_id)
        if stores is None:
            return
        if from_store is not None and from_store in stores.by_id:
            stores.by_id[from_store].load -= 1
        if to_store is not None and to_store in stores.by_id:
            stores.by_id[to_store].load += 1

    def _touch(self, t: Ticket) -> None:
        if t.id not in self._new:
            self._moved[t.id] = t

    def _record(self, t: Ticket, decision: Decision, outcome: DispatchOutcome) -> None:
        """Keep the decision: chosen store, policy, reason and every candidate's verdict."""
        self._offers.append(
            {
                "order_id": t.id,
                "hop": t.hops,
                "store_id": decision.store_id,
                "policy": decision.policy,
                "reason": decision.reason[:500],
                "candidates": decision.candidate_dicts(),
                "decided_at": self.now,
                "outcome": outcome.value,
                "outcome_reason": None,
                "outcome_at": None if outcome is DispatchOutcome.PENDING else self.now,
                "reminded_at": None,
            }
        )

    # -- writing

    def flush(self) -> None:
        """Write everything decided so far: one ``executemany`` per table.

        New orders go in with their final state (``ON CONFLICT DO NOTHING`` on the client
        key); should a concurrent request have taken one of the keys, _KeyRace is raised
        before anything else is written (``create_orders`` rolls back and redoes the burst).
        Rows go to the driver directly (``BulkSql``): SQLAlchemy's per-row parameter
        processing cost more than the database's work on a burst.
        """
        session = self.session
        session.flush()  # the caller's ORM changes (a closed offer, say) go first
        sql = BulkSql(session)
        dt, js = sql.dt, sql.js
        if self._new:
            rows = []
            for row, t in self._new.values():
                rows.append(
                    (
                        t.id,
                        row["client_order_key"],
                        t.channel,
                        t.product,
                        t.priority,
                        row["customer_id"],
                        t.region_id,
                        row["address"],
                        t.latitude,
                        t.longitude,
                        dt(row["window_start"]),
                        dt(row["window_end"]),
                        t.directed_store_id,
                        t.status,
                        t.store_id,
                        t.hops,
                        t.escalation_reason,
                        dt(self.now),
                        dt(t.dispatched_at),
                    )
                )
            if sql.many(_INSERT_ORDER, rows) < len(rows):
                raise _KeyRace  # nothing of this burst may be written: the caller redoes it
        if self._moved:
            sql.many(
                _UPDATE_ORDER,
                [
                    (t.status, t.store_id, t.hops, dt(t.dispatched_at), t.escalation_reason, t.id)
                    for t in self._moved.values()
                ],
            )
        sql.many(
            "INSERT INTO oao_transition (order_id, from_status, to_status, actor, reason, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    r["order_id"],
                    r["from_status"],
                    r["to_status"],
                    r["actor"],
                    r["reason"],
                    dt(r["at"]),
                )
                for r in self._transitions
            ],
        )
        sql.many(
            "INSERT INTO oao_dispatch (order_id, hop, store_id, policy, reason, candidates, "
            "decided_at, outcome, outcome_at) VALUES (?, ?, ?, ?, ?, ?j, ?, ?, ?)",
            [
                (
                    r["order_id"],
                    r["hop"],
                    r["store_id"],
                    r["policy"],
                    r["reason"],
                    js(r["candidates"]),
                    dt(r["decided_at"]),
                    r["outcome"],
                    dt(r["outcome_at"]),
                )
                for r in self._offers
            ],
        )
        timers.schedule_many(session, self._timers, now=self.now)
        insert_alerts(sql, self._alerts)
        expire_orders(session, self._moved)
        self._new, self._moved = {}, {}
        self._transitions, self._offers, self._timers, self._alerts = [], [], [], []


_INSERT_ORDER = (
    "INSERT INTO oao_order (id, client_order_key, channel, product, priority, customer_id, "
    "region_id, address, latitude, longitude, window_start, window_end, directed_store_id, "
    "status, store_id, hops, escalation_reason, created_at, dispatched_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (client_order_key) DO NOTHING"
)
_UPDATE_ORDER = (
    "UPDATE oao_order SET status = ?, store_id = ?, hops = ?, dispatched_at = ?, "
    "escalation_reason = ? WHERE id = ?"
)


def insert_alerts(sql: BulkSql, alerts: Sequence[dict[str, Any]]) -> None:
    """Ops alerts (kind, store, detail, at), one statement."""
    sql.many(
        "INSERT INTO alert (kind, store_id, detail, created_at) VALUES (?, ?, ?, ?)",
        [(a["kind"], a["store_id"], a["detail"], sql.dt(a["created_at"])) for a in alerts],
    )


def expire_orders(session: Session, ids: Iterable[str]) -> None:
    """ORM copies of orders written with plain SQL are stale: reload them on next access."""
    if not session.identity_map:
        return
    for order_id in ids:
        order = session.identity_map.get(identity_key(OaoOrder, order_id))
        if order is not None:
            session.expire(order)


def _request(t: Ticket) -> DispatchRequest:
    """What dispatch looks at of an order."""
    return DispatchRequest(t.latitude, t.longitude, t.product, t.channel, t.directed_store_id)


_EXCLUDING = (DispatchOutcome.REJECTED.value, DispatchOutcome.TIMED_OUT.value)


def dispatch(
    session: Session, order: OaoOrder, now: datetime, actor: str, cause: str = ""
) -> Decision | None:
    """Dispatch one ORM order (a run of one): see ``DispatchRun.dispatch``."""
    run = DispatchRun(session, now)
    ticket = Ticket.of(order)
    decision = run.dispatch(ticket, actor, cause)
    run.flush()
    return decision


def offer(
    session: Session,
    order: OaoOrder,
    decision: Decision,
    now: datetime,
    actor: str,
    cause: str = "",
    run: DispatchRun | None = None,
) -> None:
    """Give one ORM order to ``decision.store_id`` (a run of one): see ``DispatchRun.offer``."""
    run = run or DispatchRun(session, now)
    ticket = Ticket.of(order)
    run.offer(ticket, decision, actor, cause)
    run.flush()


def scoped_order(
    session: Session, principal: Principal, order_id: str, *, for_update: bool = False
) -> OaoOrder:
    """An order the caller may see (locked for update if asked), else NotFound."""
    query = select(OaoOrder).where(OaoOrder.id == order_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    order = session.exec(query).first()
    if order is None or not _sees(principal, order):
        raise NotFound(f"order {order_id!r} not found")
    return order


def _sees(principal: Principal, order: OaoOrder) -> bool:
    """Admins see all; ops their region; store staff the orders offered to their store."""
    if principal.role is Role.ADMIN:
        return True
    if principal.role in REGION_ROLES:
        return principal.role is Role.REGIONAL_OPS and order.region_id == principal.region_id
    if principal.role in STORE_ROLES:
        return order.store_id is not None and order.store_id == principal.store_id
    return False


def list_orders(
    session: Session, principal: Principal, status: OrderStatus | None, offset: int = 0
) -> Sequence[OaoOrder]:
    """Orders in the caller's scope, newest first (``status=escalated``: the queue)."""
    query = select(OaoOrder).order_by(col(OaoOrder.created_at).desc(), col(OaoOrder.id).desc())
    if principal.role is Role.REGIONAL_OPS:
        query = query.where(OaoOrder.region_id == principal.region_id)
    elif principal.role in STORE_ROLES:
        query = query.where(OaoOrder.store_id == principal.store_id)
    elif principal.role is not Role.ADMIN:
        return []
    if status is not None:
        query = query.where(OaoOrder.status == status.value)
    return session.exec(query.offset(offset).limit(MAX_PAGE)).all()


def history(session: Session, order: OaoOrder) -> OrderHistory:
    """The order with every dispatch decision and every audited transition, in order."""
    dispatches = session.exec(
        select(OaoDispatch).where(OaoDispatch.order_id == order.id).order_by(col(OaoDispatch.id))
    ).all()
    transitions = session.exec(
        select(OaoTransition)
        .where(OaoTransition.order_id == order.id)
        .order_by(col(OaoTransition.id))
    ).all()
    return OrderHistory.model_validate(
        {
            "order": OrderPublic.model_validate(order),
            "dispatches": [d.model_dump() for d in dispatches],
            "transitions": [t.model_dump() for t in transitions],
        }
    )
