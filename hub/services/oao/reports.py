"""OAO reports per store and region: dispatch and acceptance times, re-dispatch and completion.

Definitions (also in the README):
- dispatch time: order received -> first offer to a store (median, seconds);
- acceptance time: the accepted offer's decision -> its acceptance (median, seconds);
- re-dispatch rate: offers that ended rejected or timed out / offers that ended;
- completion rate: orders completed / orders the store (region) accepted.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Literal

# Figure without pyplot: no global backend state, safe in API threads (Agg renders it).
from matplotlib.figure import Figure
from sqlmodel import Session, col, select

from hub.models.auth import Role
from hub.models.oao import DispatchOutcome, OaoDispatch, OaoOrder, OrderStatus
from hub.services.auth import Principal

Group = Literal["store", "region"]
# Chart size in inches at the default DPI: readable with up to ~40 stores on the x axis.
CHART_SIZE_IN = (10.0, 6.0)
CHART_DPI = 100
_ENDED = (
    DispatchOutcome.ACCEPTED.value,
    DispatchOutcome.REJECTED.value,
    DispatchOutcome.TIMED_OUT.value,
)
_BOUNCED = (DispatchOutcome.REJECTED.value, DispatchOutcome.TIMED_OUT.value)
_ACCEPTED_EVER = (
    OrderStatus.ACCEPTED.value,
    OrderStatus.IN_PROGRESS.value,
    OrderStatus.COMPLETED.value,
    OrderStatus.FAILED.value,
)


@dataclass
class ReportRow:
    """One store's or region's figures (None where there is nothing to measure yet)."""

    key: str
    orders: int
    offers: int
    dispatch_s_median: float | None
    acceptance_s_median: float | None
    redispatch_rate: float | None
    completion_rate: float | None
    escalated: int


@dataclass
class _Acc:
    orders: set[str]
    dispatch_s: list[float]
    acceptance_s: list[float]
    offers: int = 0
    ended: int = 0
    bounced: int = 0
    accepted_orders: int = 0
    completed: int = 0
    escalated: int = 0


def _ratio(part: int, whole: int) -> float | None:
    """part / whole, or None when whole is 0."""
    return round(part / whole, 4) if whole else None


def _median(values: list[float]) -> float | None:
    """The median, or None for no values."""
    return round(statistics.median(values), 1) if values else None


def build(
    session: Session, principal: Principal, group: Group, since: datetime | None = None
) -> list[ReportRow]:
    """Report rows per store or region for orders received since ``since`` in scope."""
    query = select(OaoOrder)
    if principal.role is Role.REGIONAL_OPS:
        query = query.where(OaoOrder.region_id == principal.region_id)
    elif principal.role is not Role.ADMIN:
        return []
    if since is not None:
        query = query.where(col(OaoOrder.created_at) >= since)
    order_rows = {o.id: o for o in session.exec(query).all()}
    offers = (
        session.exec(
            select(OaoDispatch)
            .where(col(OaoDispatch.order_id).in_(list(order_rows)))
            .order_by(col(OaoDispatch.id))
        ).all()
        if order_rows
        else []
    )
    acc: dict[str, _Acc] = defaultdict(lambda: _Acc(set(), [], []))
    first_offer: dict[str, OaoDispatch] = {}
    for offer in offers:
        order = order_rows[offer.order_id]
        if offer.store_id is not None:
            first_offer.setdefault(order.id, offer)
        key = order.region_id if group == "region" else offer.store_id
        if key is None or offer.outcome == DispatchOutcome.WITHDRAWN.value:
            continue
        a = acc[key]
        a.offers += 1
        a.ended += offer.outcome in _ENDED
        a.bounced += offer.outcome in _BOUNCED
        if offer.outcome == DispatchOutcome.ACCEPTED.value and offer.outcome_at is not None:
            a.acceptance_s.append((offer.outcome_at - offer.decided_at).total_seconds())
    for order in order_rows.values():
        first = first_offer.get(order.id)
        key = (
            order.region_id
            if group == "region"
            else (order.store_id or (first.store_id if first else None))
        )
        if key is None:
            continue
        a = acc[key]
        a.orders.add(order.id)
        if first is not None and (group == "region" or first.store_id == key):
            a.dispatch_s.append((first.decided_at - order.created_at).total_seconds())
        a.accepted_orders += order.status in _ACCEPTED_EVER
        a.completed += order.status == OrderStatus.COMPLETED.value
        a.escalated += order.status == OrderStatus.ESCALATED.value
    return [
        ReportRow(
            key,
            len(a.orders),
            a.offers,
            _median(a.dispatch_s),
            _median(a.acceptance_s),
            _ratio(a.bounced, a.ended),
            _ratio(a.completed, a.accepted_orders),
            a.escalated,
        )
        for key, a in sorted(acc.items())
    ]


def to_csv(rows: Sequence[ReportRow]) -> str:
    """The rows as CSV with a header line (empty cells where a figure is undefined)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f.name for f in fields(ReportRow)])
    for row in rows:
        writer.writerow(["" if v is None else v for v in asdict(row).values()])
    return out.getvalue()


def to_chart(rows: Sequence[ReportRow], fmt: Literal["png", "svg"], title: str) -> bytes:
    """Acceptance time and the two rates per store/region as one PNG or SVG figure."""
    keys = [r.key for r in rows]
    fig = Figure(figsize=CHART_SIZE_IN)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.bar(keys, [(r.acceptance_s_median or 0.0) / 60.0 for r in rows], color="#4c72b0")
    top.set_ylabel("median acceptance (min)")
    top.set_title(title)
    width = 0.4
    xs = range(len(keys))
    bottom.bar(
        [x - width / 2 for x in xs],
        [r.redispatch_rate or 0.0 for r in rows],
        width,
        label="re-dispatch rate",
        color="#dd8452",
    )
    bottom.bar(
        [x + width / 2 for x in xs],
        [r.completion_rate or 0.0 for r in rows],
        width,
        label="completion rate",
        color="#55a868",
    )
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("rate")
    bottom.legend(loc="upper right")
    bottom.set_xticks(list(xs), keys, rotation=30, ha="right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=CHART_DPI)
    return buffer.getvalue()
