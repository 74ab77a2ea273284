"""What audience and history rules read about customers: locked rows, tags, visit history.

Evaluation locks the customers' rows first (by id: see ``evaluation``) and reads their
audience columns in that same statement; tags and the visit history are read only when
a candidate campaign's rules look at them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, func, select
from sqlmodel import Session

from hub.models.campaigns import Trigger
from hub.models.checkins import Visit
from hub.models.customers import Customer, CustomerTag
from hub.services.campaigns.index import CampaignSnapshot
from hub.services.campaigns.rules import CustomerFacts

_CONSENT_FIELDS = {
    "sms": "consent_marketing_sms",
    "push": "consent_marketing_push",
    "call": "consent_marketing_call",
    "analytics": "consent_analytics",
}
# Triggers whose rules read the visit history (first visit, return after N days).
_HISTORY_TRIGGERS = (Trigger.FIRST_VISIT.value, Trigger.RETURN_AFTER_DAYS.value)
_CUSTOMER = Customer.__table__  # type: ignore[attr-defined]
_TAG = CustomerTag.__table__  # type: ignore[attr-defined]
_VISIT = Visit.__table__  # type: ignore[attr-defined]
_FACT_COLUMNS = ("id", "gender", "age_band", "postal_code", *_CONSENT_FIELDS.values())
# Statements built once (building an expression costs more than running it on SQLite).
_LOCK_CUSTOMERS = (
    select(*(_CUSTOMER.c[name] for name in _FACT_COLUMNS))
    .where(_CUSTOMER.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_CUSTOMER.c.id)
    .with_for_update()
)
_TAGS = select(_TAG.c.customer_id, _TAG.c.kind, _TAG.c.name).where(
    _TAG.c.customer_id.in_(bindparam("ids", expanding=True))
)
_AT_STORE = _VISIT.c.store_id == bindparam("store_id")
_HISTORY = select(
    func.count(),
    func.coalesce(func.sum(case((_AT_STORE, 1), else_=0)), 0),
    func.max(case((_AT_STORE, _VISIT.c.last_seen_at), else_=None)),
).where(_VISIT.c.customer_id == bindparam("customer_id"), _VISIT.c.id != bindparam("visit_id"))

# The customer columns the audience rules read (besides ``id``). A caller that locks the
# customer's row anyway (the check-in) selects these in its lock statement and hands the
# row over (with ``id``), so evaluation neither reads nor locks the row a second time.
AUDIENCE_COLUMNS = tuple(_CUSTOMER.c[name] for name in _FACT_COLUMNS if name != "id")
# The visit history as three columns of a statement that reads other things too (the
# check-in's one read of the customer's state): same parameters as ``_HISTORY``. Each
# reads the customer's visits only (the store is tested inside the aggregate, as in
# ``_HISTORY``): with the store in the WHERE clause PostgreSQL, on fresh or stale
# statistics, chose the store's index and read every visit of the store.
_BEFORE = and_(
    _VISIT.c.customer_id == bindparam("customer_id"), _VISIT.c.id != bindparam("visit_id")
)
HISTORY_COLUMNS = (
    select(func.count()).where(_BEFORE).scalar_subquery().label("visits_before"),
    select(func.coalesce(func.sum(case((_AT_STORE, 1), else_=0)), 0))
    .where(_BEFORE)
    .scalar_subquery()
    .label("store_visits_before"),
    select(func.max(case((_AT_STORE, _VISIT.c.last_seen_at), else_=None)))
    .where(_BEFORE)
    .scalar_subquery()
    .label("previous_store_visit_at"),
)
# Facts of a customer without history (no candidate reads it).
NO_HISTORY: tuple[int, int, datetime | None] = (0, 0, None)

# What ``lock_customers`` and ``row_of`` give: the audience columns of one customer.
CustomerRow = dict[str, Any]


def lock_customers(session: Session, customer_ids: list[str]) -> dict[str, CustomerRow]:
    """Lock the customers' rows in id order (one statement); their audience columns by id."""
    rows = session.connection().execute(_LOCK_CUSTOMERS, {"ids": customer_ids})
    return {row["id"]: dict(row) for row in rows.mappings()}


def row_of(customer: Customer) -> CustomerRow:
    """The audience columns of a loaded customer, as ``lock_customers`` returns them."""
    return {name: getattr(customer, name) for name in _FACT_COLUMNS}


def load_tags(session: Session, customer_ids: list[str]) -> dict[str, frozenset[str]]:
    """Every ``kind:name`` tag of the customers, in one query."""
    out: dict[str, set[str]] = {}
    for cid, kind, name in session.connection().execute(_TAGS, {"ids": customer_ids}):
        out.setdefault(cid, set()).add(f"{kind}:{name}")
    return {cid: frozenset(t) for cid, t in out.items()}


def load_history(
    session: Session, customer_id: str, store_id: str, visit_id: str | None
) -> tuple[int, int, datetime | None]:
    """Visits before this one: (all stores, this store, last seen in this store)."""
    params = {"store_id": store_id, "customer_id": customer_id, "visit_id": visit_id or ""}
    row = session.connection().execute(_HISTORY, params).one()
    return int(row[0]), int(row[1]), row[2]


def any_reads_tags(campaigns: Iterable[CampaignSnapshot]) -> bool:
    """Whether any of the campaigns' audiences looks at the customer's tags."""
    return any(
        (c.audience or {}).get("tags_all") or (c.audience or {}).get("tags_none") for c in campaigns
    )


def any_reads_history(campaigns: Iterable[CampaignSnapshot]) -> bool:
    """Whether any of the campaigns looks at the customer's visit history."""
    for c in campaigns:
        audience = c.audience or {}
        if (
            c.trigger in _HISTORY_TRIGGERS
            or audience.get("min_visits") is not None
            or audience.get("max_visits") is not None
        ):
            return True
    return False


def facts(
    session: Session,
    row: CustomerRow,
    tags: frozenset[str],
    store_id: str,
    visit_id: str | None,
    with_history: bool = True,
) -> CustomerFacts:
    """What the audience and history rules read: the row, the tags, and one history query
    when ``with_history`` (otherwise those facts stay zero: no candidate reads them).
    """
    history = load_history(session, row["id"], store_id, visit_id) if with_history else NO_HISTORY
    return facts_of(row, tags, history)


def facts_of(
    row: CustomerRow, tags: frozenset[str], history: tuple[int, int, datetime | None]
) -> CustomerFacts:
    """The rules' facts from the row, the tags and the history (visits, here, last here)."""
    visits, store_visits, previous = history
    return CustomerFacts(
        gender=row["gender"],
        age_band=row["age_band"],
        postal_code=row["postal_code"],
        consents=frozenset(k for k, f in _CONSENT_FIELDS.items() if row[f]),
        tags=tags,
        visits_before=int(visits or 0),
        store_visits_before=int(store_visits or 0),
        previous_store_visit_at=previous,
    )


def load_facts(
    session: Session, customer: Customer, store_id: str, visit_id: str | None
) -> CustomerFacts:
    """Everything about one customer the rules may read (dry runs, outside evaluation)."""
    tags = load_tags(session, [customer.id]).get(customer.id, frozenset())
    return facts(session, row_of(customer), tags, store_id, visit_id)
