"""Dispatch policies on an in-memory store set: channel rules, directed, nearest (k-d tree).

Pure decisions (no database): ``hub.services.oao.orders`` builds a ``StoreSet`` from the
registry and records what ``choose`` returns; the benchmark drives the same code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hub.models.oao import DispatchPolicyKind
from hub.services.errors import Conflict
from hub.services.oao.geo import SphereIndex, haversine_km

# First k-d tree query asks for this many stores; doubled while none of them is eligible
# (8 covers a city district; doubling keeps the worst case at log2(n) queries).
INITIAL_K = 8
# Two stores closer than 1 m in distance to the address are a tie (same building).
TIE_KM = 0.001
# A decision keeps at most this many considered stores (the nearest ones) so one row
# stays small when a whole city is full; the rest are counted in the reason.
MAX_RECORDED_CANDIDATES = 25
ELIGIBLE = "eligible"


@dataclass
class StoreState:
    """One store as dispatch sees it at decision time.

    ``is_open`` and ``skills`` may be None: a subclass then works them out in
    ``open_now``/``skill_set`` only for the stores a decision looks at (a region may have
    hundreds; see ``hub.services.oao.config``).
    """

    id: str
    latitude: float
    longitude: float
    is_open: bool | None
    skills: frozenset[str] | None
    capacity: int
    load: int = 0

    def open_now(self) -> bool:
        """Whether the store is open at decision time (None here means no hours: open)."""
        if self.is_open is None:
            self.is_open = True
        return self.is_open

    def skill_set(self) -> frozenset[str]:
        """The products this store does (None here means none)."""
        if self.skills is None:
            self.skills = frozenset()
        return self.skills


@dataclass(frozen=True)
class DispatchRequest:
    """The parts of an order that dispatch looks at."""

    latitude: float
    longitude: float
    product: str
    channel: str
    directed_store_id: str | None = None


@dataclass(frozen=True)
class PolicyView:
    """The region policy's dispatch half."""

    mode: str = DispatchPolicyKind.NEAREST.value
    channel_rules: Mapping[str, Sequence[str]] = field(default_factory=dict)
    max_distance_km: float = 50.0


@dataclass(frozen=True)
class Candidate:
    """A store considered for an order, its distance and verdict (``eligible`` or why not)."""

    store_id: str
    distance_km: float
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the decision record."""
        return {
            "store_id": self.store_id,
            "distance_km": round(self.distance_km, 3),
            "verdict": self.verdict,
        }


@dataclass
class Decision:
    """The chosen store (or None), the policy that chose, why, and every candidate."""

    store_id: str | None
    policy: str
    reason: str
    candidates: list[Candidate]

    def candidate_dicts(self) -> list[dict[str, Any]]:
        """Candidates as JSON, capped at ``MAX_RECORDED_CANDIDATES``."""
        return [c.as_dict() for c in self.candidates[:MAX_RECORDED_CANDIDATES]]


class NoEligibleStore(Conflict):
    """No store can take the order; carries the decision with every candidate's verdict."""

    code = "no_eligible_store"

    def __init__(self, decision: Decision) -> None:
        """Keep the decision for the record."""
        super().__init__(decision.reason)
        self.decision = decision


class StoreSet:
    """The stores of one region with a spatial index; loads change as orders are placed."""

    def __init__(self, stores: Sequence[StoreState]) -> None:
        """Index ``stores`` (order kept: index positions map back to them)."""
        self.stores = list(stores)
        self.by_id = {s.id: s for s in self.stores}
        self.index = SphereIndex(
            [s.latitude for s in self.stores], [s.longitude for s in self.stores]
        )

    def prime(self, requests: Sequence[DispatchRequest], policy: PolicyView) -> None:
        """Work out the first nearest-store query of many orders at once (a burst's decisions
        then reuse it: same answers, one vectorised tree query)."""
        self.index.prime(
            [r.latitude for r in requests],
            [r.longitude for r in requests],
            INITIAL_K,
            policy.max_distance_km,
        )

    def verdict(self, store: StoreState, product: str, excluded: Iterable[str]) -> str:
        """``eligible``, or the first reason ``store`` cannot take a ``product`` order now."""
        if store.id in excluded:
            return "declined or timed out earlier"
        if not store.open_now():
            return "closed now"
        if product not in store.skill_set():
            return f"does not do {product}"
        if store.load >= store.capacity:
            return f"full ({store.load}/{store.capacity} open orders)"
        return ELIGIBLE

    def choose(
        self, request: DispatchRequest, policy: PolicyView, excluded: frozenset[str] = frozenset()
    ) -> Decision:
        """Apply channel rule, then directed, then nearest; NoEligibleStore if none fits."""
        rule = policy.channel_rules.get(request.channel)
        if rule:
            decision = self._nearest_among(request, policy, excluded, rule)
            decision.policy = "channel_rule"
            decision.reason = (
                f"channel {request.channel} goes to {', '.join(rule)}: " + decision.reason
            )
            return _checked(decision)
        prefix = ""
        if policy.mode == DispatchPolicyKind.DIRECTED.value and request.directed_store_id:
            named = self.by_id.get(request.directed_store_id)
            verdict = (
                "not a store of this region"
                if named is None
                else self.verdict(named, request.product, excluded)
            )
            distance = (
                float(
                    haversine_km(
                        request.latitude,
                        request.longitude,
                        np.array([named.latitude]),
                        np.array([named.longitude]),
                    )[0]
                )
                if named is not None
                else float("nan")
            )
            if verdict == ELIGIBLE and named is not None:
                return Decision(
                    named.id,
                    "directed",
                    f"directed to the named store {named.id}",
                    [Candidate(named.id, distance, ELIGIBLE)],
                )
            prefix = f"directed store {request.directed_store_id} {verdict}; fell back to "
        decision = self.nearest(request, policy, excluded)
        if prefix:
            decision.policy = "directed_fallback"
            decision.reason = prefix + decision.reason
        return _checked(decision)

    def nearest(
        self, request: DispatchRequest, policy: PolicyView, excluded: frozenset[str] = frozenset()
    ) -> Decision:
        """The nearest eligible store by great-circle distance (k-d tree, k doubling)."""
        k = INITIAL_K
        while True:
            distances, positions = self.index.nearest(
                request.latitude, request.longitude, k, policy.max_distance_km
            )
            ranked = [
                (float(d), self.stores[int(i)]) for d, i in zip(distances, positions, strict=True)
            ]
            decision, settled = _pick(ranked, request, excluded, self, "nearest")
            exhausted = len(ranked) < k or k >= self.index.size
            if settled or exhausted:
                if decision.store_id is None:
                    decision.reason = (
                        f"no eligible store within {policy.max_distance_km:g} km "
                        f"({len(ranked)} considered)"
                    )
                return decision
            k *= 2

    def _nearest_among(
        self,
        request: DispatchRequest,
        policy: PolicyView,
        excluded: frozenset[str],
        store_ids: Sequence[str],
    ) -> Decision:
        """Nearest eligible store of a short list (channel rules): a direct scan is enough."""
        listed = [self.by_id[s] for s in store_ids if s in self.by_id]
        missing = [
            Candidate(s, float("nan"), "not a store of this region")
            for s in store_ids
            if s not in self.by_id
        ]
        if not listed:
            return Decision(
                None, "channel_rule", "none of the listed stores is in the region", missing
            )
        km = haversine_km(
            request.latitude,
            request.longitude,
            np.array([s.latitude for s in listed]),
            np.array([s.longitude for s in listed]),
        )
        ranked = sorted(
            zip((float(d) for d in km), listed, strict=True), key=lambda pair: (pair[0], pair[1].id)
        )
        decision, _ = _pick(ranked, request, excluded, self, "channel_rule")
        decision.candidates.extend(missing)
        if decision.store_id is None:
            decision.reason = "no listed store is eligible"
        return decision


def _pick(
    ranked: Sequence[tuple[float, StoreState]],
    request: DispatchRequest,
    excluded: frozenset[str],
    stores: StoreSet,
    policy: str,
) -> tuple[Decision, bool]:
    """Walk stores nearest first; the winner is the nearest eligible, ties to the least loaded.

    Returns the decision and whether it is settled (a store beyond the winner's distance
    was seen, so no closer or tied store can be missing from ``ranked``).
    """
    candidates: list[Candidate] = []
    tied: list[tuple[float, StoreState]] = []
    settled = False
    for distance, store in ranked:
        if tied and distance - tied[0][0] > TIE_KM:
            settled = True
            break
        verdict = stores.verdict(store, request.product, excluded)
        candidates.append(Candidate(store.id, distance, verdict))
        if verdict == ELIGIBLE:
            tied.append((distance, store))
    if not tied:
        return Decision(None, policy, "", candidates), False
    tied.sort(key=lambda pair: (pair[1].load / max(pair[1].capacity, 1), pair[1].id))
    distance, winner = tied[0]
    reason = f"nearest eligible store {winner.id} at {distance:.2f} km"
    if len(tied) > 1:
        others = ", ".join(s.id for _, s in tied[1:])
        reason += f" (tie within {TIE_KM * 1000:g} m with {others}: least loaded, then id)"
    skipped = sum(1 for c in candidates if c.verdict != ELIGIBLE and c.distance_km < distance)
    if skipped:
        reason += f"; {skipped} nearer store(s) ineligible"
    return Decision(winner.id, policy, reason, candidates), settled


def _checked(decision: Decision) -> Decision:
    """The decision, or NoEligibleStore when it chose nothing."""
    if decision.store_id is None:
        raise NoEligibleStore(decision)
    return decision
