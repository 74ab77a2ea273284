"""Dispatch policies on in-memory stores: nearest, ties, closed/full/skills, rules, directed."""

from __future__ import annotations

import numpy as np
import pytest

from hub.services.oao.dispatch import (
    ELIGIBLE,
    INITIAL_K,
    DispatchRequest,
    NoEligibleStore,
    PolicyView,
    StoreSet,
    StoreState,
)
from hub.services.oao.geo import EARTH_RADIUS_KM, SphereIndex, haversine_km

ALL = frozenset({"sim_card", "broadband_install", "device", "plan_change"})
NO_BROADBAND = ALL - {"broadband_install"}
HERE = (26.0870, 119.2990)


def store(sid: str, lat: float, lon: float, **kw: object) -> StoreState:
    """An open store with every skill and room, unless told otherwise."""
    fields: dict[str, object] = {"is_open": True, "skills": ALL, "capacity": 10, "load": 0}
    fields.update(kw)
    return StoreState(sid, lat, lon, **fields)  # type: ignore[arg-type]


def request(
    product: str = "sim_card", channel: str = "app", directed: str | None = None
) -> DispatchRequest:
    return DispatchRequest(HERE[0], HERE[1], product, channel, directed)


# Three stores at about 0.3, 3.9 and 5.5 km from HERE.
CITY = [
    store("near", 26.0845, 119.2965),
    store("mid", 26.0532, 119.3143),
    store("far", 26.0389, 119.2731),
]


def test_nearest_open_store_wins_and_every_candidate_is_recorded() -> None:
    """The nearest eligible store wins; the reason names it and its distance."""
    decision = StoreSet(CITY).choose(request(), PolicyView())
    assert decision.store_id == "near" and decision.policy == "nearest"
    assert "nearest eligible store near at 0.3" in decision.reason
    assert [c.verdict for c in decision.candidates][0] == ELIGIBLE
    assert decision.candidates[0].distance_km == pytest.approx(0.37, abs=0.05)


def test_closed_full_and_unskilled_stores_are_skipped_with_their_reason() -> None:
    """Closed, full and no-broadband stores lose to a farther one; each verdict is kept."""
    stores = [
        store("near", 26.0845, 119.2965, is_open=False),
        store("mid", 26.0532, 119.3143, load=10),
        store("far", 26.0389, 119.2731, skills=NO_BROADBAND),
        store("farther", 26.0000, 119.2000),
    ]
    decision = StoreSet(stores).choose(request("broadband_install"), PolicyView())
    assert decision.store_id == "farther"
    verdicts = {c.store_id: c.verdict for c in decision.candidates}
    assert verdicts == {
        "near": "closed now",
        "mid": "full (10/10 open orders)",
        "far": "does not do broadband_install",
        "farther": ELIGIBLE,
    }
    assert "3 nearer store(s) ineligible" in decision.reason


def test_tie_goes_to_the_least_loaded_then_the_lower_id() -> None:
    """Two stores in the same building: the emptier wins; with equal load, the lower id."""
    twins = [store("b-twin", 26.0845, 119.2965, load=3), store("a-twin", 26.0845, 119.2965, load=5)]
    decision = StoreSet([*twins, *CITY[1:]]).choose(request(), PolicyView())
    assert decision.store_id == "b-twin" and "tie within 1 m with a-twin" in decision.reason
    even = [store("b-twin", 26.0845, 119.2965), store("a-twin", 26.0845, 119.2965)]
    assert StoreSet(even).choose(request(), PolicyView()).store_id == "a-twin"


def test_no_eligible_store_is_a_clear_error_with_candidates() -> None:
    """Every store closed: NoEligibleStore says so and carries every verdict."""
    closed = [store(s.id, s.latitude, s.longitude, is_open=False) for s in CITY]
    with pytest.raises(NoEligibleStore) as info:
        StoreSet(closed).choose(request(), PolicyView())
    assert info.value.message == "no eligible store within 50 km (3 considered)"
    assert info.value.code == "no_eligible_store"
    assert {c["verdict"] for c in info.value.decision.candidate_dicts()} == {"closed now"}


def test_distance_cap_and_excluded_stores() -> None:
    """Stores beyond max_distance_km are not considered; decliners are excluded."""
    assert StoreSet(CITY).choose(request(), PolicyView(), frozenset({"near"})).store_id == "mid"
    with pytest.raises(NoEligibleStore):
        StoreSet(CITY).choose(request(), PolicyView(max_distance_km=2.0), frozenset({"near"}))


def test_k_doubles_until_an_eligible_store_is_found() -> None:
    """More than INITIAL_K full stores nearer than the only free one: still found."""
    full = [store(f"full-{i}", HERE[0] + 0.001 * i, HERE[1], load=10) for i in range(INITIAL_K * 3)]
    free = store("free", HERE[0] + 0.2, HERE[1])
    decision = StoreSet([*full, free]).choose(request(), PolicyView())
    assert decision.store_id == "free"
    assert len(decision.candidates) == INITIAL_K * 3 + 1


def test_channel_rule_restricts_to_listed_stores_without_fallback() -> None:
    """Enterprise chat always goes to its listed stores; none eligible is an error."""
    policy = PolicyView(channel_rules={"enterprise_chat": ["far", "mid"]})
    decision = StoreSet(CITY).choose(request(channel="enterprise_chat"), policy)
    assert decision.store_id == "mid" and decision.policy == "channel_rule"
    assert decision.reason.startswith("channel enterprise_chat goes to far, mid")
    assert StoreSet(CITY).choose(request(channel="app"), policy).store_id == "near"
    with pytest.raises(NoEligibleStore, match="no listed store is eligible"):
        StoreSet(CITY).choose(request(channel="enterprise_chat"), policy, frozenset({"far", "mid"}))


def test_directed_store_and_its_fallback() -> None:
    """Directed mode uses the named store; a closed named store falls back to nearest."""
    policy = PolicyView(mode="directed")
    decision = StoreSet(CITY).choose(request(directed="far"), policy)
    assert (decision.store_id, decision.policy) == ("far", "directed")
    closed_far = [*CITY[:2], store("far", 26.0389, 119.2731, is_open=False)]
    fallback = StoreSet(closed_far).choose(request(directed="far"), policy)
    assert fallback.store_id == "near" and fallback.policy == "directed_fallback"
    assert fallback.reason.startswith("directed store far closed now; fell back to nearest")
    assert StoreSet(CITY).choose(request(directed="far"), PolicyView()).store_id == "near"


def test_kd_tree_agrees_with_a_haversine_scan(rng: np.random.Generator) -> None:
    """On 500 random stores, the index returns exactly the brute-force nearest store."""
    lats = rng.uniform(24.0, 27.5, 500)
    lons = rng.uniform(117.0, 120.5, 500)
    index = SphereIndex(list(lats), list(lons))
    for lat, lon in zip(rng.uniform(24.0, 27.5, 200), rng.uniform(117.0, 120.5, 200), strict=True):
        km, idx = index.nearest(float(lat), float(lon), 1, EARTH_RADIUS_KM)
        scan = haversine_km(float(lat), float(lon), lats, lons)
        assert int(idx[0]) == int(np.argmin(scan))
        assert km[0] == pytest.approx(scan.min(), rel=1e-9, abs=1e-6)
