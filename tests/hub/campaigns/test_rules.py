"""Pure rules: every audience rule, where/when, quiet hours across DST, holdout stability."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from hub.models.campaigns import Campaign, CampaignCreate
from hub.models.registry import Store
from hub.services.campaigns import rules
from hub.services.campaigns.rules import CustomerFacts

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)  # Monday 11:00 in Shanghai


def _campaign(**spec: Any) -> Campaign:
    """A Campaign row built from a validated CampaignCreate body."""
    body = {"name": "c", "trigger": "checkin", "reward": {"kind": "points", "points": 1}, **spec}
    parsed = CampaignCreate.model_validate(body)
    return Campaign(
        id="cmp_x",
        name="c",
        trigger=parsed.trigger.value,
        trigger_param=parsed.trigger_param,
        audience=parsed.audience.model_dump(mode="json"),
        where=parsed.where.model_dump(mode="json"),
        when=parsed.when.model_dump(mode="json"),
        reward_kind="points",
        points=1,
        holdout_share=parsed.holdout_share,
        created_at=NOW,
        updated_at=NOW,
    )


def _facts(**over: Any) -> CustomerFacts:
    """Facts of a female 25-34 customer in 350001, overridable."""
    base: dict[str, Any] = dict(
        gender="female",
        age_band="25-34",
        postal_code="350001",
        consents=frozenset({"push"}),
        tags=frozenset({"profile:family"}),
        visits_before=3,
        store_visits_before=1,
        previous_store_visit_at=None,
    )
    return CustomerFacts(**{**base, **over})


def _store(tz: str = "Asia/Shanghai") -> Store:
    """A store in ``tz``."""
    return Store(id="s1", region_id="fz", name="s", latitude=0, longitude=0, timezone=tz)


@pytest.mark.parametrize(
    ("audience", "facts", "reason"),
    [
        ({"genders": ["male"]}, {}, "gender not in audience"),
        ({"age_bands": ["18-24"]}, {}, "age band not in audience"),
        ({"postal_prefixes": ["3600"]}, {}, "postal code not in audience"),
        ({"postal_prefixes": ["35"]}, {"postal_code": None}, "postal code not in audience"),
        ({"tags_all": ["basic:vip"]}, {}, "missing tag basic:vip"),
        ({"tags_none": ["profile:family"]}, {}, "excluded by tag profile:family"),
        ({"min_visits": 4}, {}, "fewer visits than min_visits"),
        ({"max_visits": 2}, {}, "more visits than max_visits"),
        ({"consents": ["sms"]}, {}, "no sms consent"),
    ],
)
def test_each_audience_rule_excludes_with_a_reason(
    audience: dict[str, Any], facts: dict[str, Any], reason: str
) -> None:
    """Each rule, alone, excludes a non-matching customer and says why."""
    assert rules.audience_reasons(_campaign(audience=audience), _facts(**facts)) == [reason]


def test_matching_audience_has_no_reasons() -> None:
    """A customer matching every rule qualifies."""
    audience = {
        "genders": ["female"],
        "age_bands": ["25-34"],
        "postal_prefixes": ["350"],
        "tags_all": ["profile:family"],
        "tags_none": ["basic:staff"],
        "min_visits": 3,
        "max_visits": 3,
        "consents": ["push"],
    }
    assert rules.audience_reasons(_campaign(audience=audience), _facts()) == []


def test_when_days_hours_and_dates_in_store_time() -> None:
    """Days and hours are read in the store's zone; start/end are instants."""
    store = _store()
    assert rules.when_reasons(_campaign(when={"days": ["mon"]}), store, NOW) == []
    assert rules.when_reasons(_campaign(when={"days": ["tue"]}), store, NOW) == [
        "not on one of the campaign's days"
    ]
    hours = {"hours": {"start": "12:00", "end": "18:00"}}
    assert rules.when_reasons(_campaign(when=hours), store, NOW) == ["outside the campaign's hours"]
    dated = {"starts_at": "2026-12-01T00:00:00Z"}
    assert rules.when_reasons(_campaign(when=dated), store, NOW) == ["before starts_at"]


@pytest.mark.parametrize(
    ("utc", "quiet"),
    [
        # Berlin, quiet 22:00-08:00. Before the spring change (CET, UTC+1) 06:30 UTC = 07:30.
        (datetime(2026, 3, 28, 6, 30, tzinfo=UTC), True),
        # After it (CEST, UTC+2) the same UTC instant is 08:30 local: no longer quiet.
        (datetime(2026, 3, 30, 6, 30, tzinfo=UTC), False),
        # 20:30 UTC: 21:30 CET (not quiet) before, 22:30 CEST (quiet) after.
        (datetime(2026, 3, 28, 20, 30, tzinfo=UTC), False),
        (datetime(2026, 3, 29, 20, 30, tzinfo=UTC), True),
        # Autumn change (Oct 25, back to CET): 06:30 UTC is 08:30 before, 07:30 after.
        (datetime(2026, 10, 24, 6, 30, tzinfo=UTC), False),
        (datetime(2026, 10, 26, 6, 30, tzinfo=UTC), True),
    ],
)
def test_quiet_hours_follow_the_store_clock_across_dst(utc: datetime, quiet: bool) -> None:
    """Quiet hours wrap midnight and shift with daylight saving in the store's zone."""
    campaign = _campaign(when={"quiet_hours": {"start": "22:00", "end": "08:00"}})
    assert ("quiet hours" in rules.when_reasons(campaign, _store("Europe/Berlin"), utc)) is quiet


def test_store_day_is_the_local_calendar_day() -> None:
    """23:59 and 00:00 local are different store days whatever the UTC date says."""
    store = _store()
    assert rules.store_day(store, datetime(2026, 11, 30, 15, 59, tzinfo=UTC)) == "2026-11-30"
    assert rules.store_day(store, datetime(2026, 11, 30, 16, 0, tzinfo=UTC)) == "2026-12-01"


def test_where_rules() -> None:
    """Stores, regions, zones and the campaign's own region each restrict."""
    store = _store()
    assert rules.where_reasons(_campaign(where={"stores": ["s2"]}), store, None) == [
        "store not in where.stores"
    ]
    assert rules.where_reasons(_campaign(where={"regions": ["xm"]}), store, None) == [
        "region not in where.regions"
    ]
    assert rules.where_reasons(_campaign(where={"zones": ["z1"]}), store, "z2") == [
        "zone not in where.zones"
    ]
    regional = _campaign(region_id="xm")
    regional.region_id = "xm"
    assert rules.where_reasons(regional, store, None) == ["store outside the campaign's region"]


def test_holdout_is_stable_and_near_its_share() -> None:
    """Same (campaign, customer) -> same bucket every time; ~20% of 10,000 held out."""
    campaign = _campaign(holdout_share=0.2)
    first = [rules.in_holdout(campaign, f"cus_{i}") for i in range(10_000)]
    again = [rules.in_holdout(campaign, f"cus_{i}") for i in range(10_000)]
    assert first == again
    # Binomial(10000, 0.2): sd = 40; 5 sd either side.
    assert 1800 <= sum(first) <= 2200
    assert rules.holdout_bucket("cmp_x", "cus_1") == pytest.approx(
        rules.holdout_bucket("cmp_x", "cus_1")
    )
    assert rules.holdout_bucket("cmp_x", "cus_1") != rules.holdout_bucket("cmp_y", "cus_1")


def test_bad_campaign_specs_are_refused() -> None:
    """Clear validation errors for inconsistent specs."""
    bad = [
        {"trigger": "dwell"},
        {"trigger": "checkin", "trigger_param": 3},
        {"trigger": "zone_entry"},
        {"holdout_share": 0.9},
        {"when": {"days": ["funday"]}},
        {"when": {"starts_at": "2026-12-02T00:00:00Z", "ends_at": "2026-12-01T00:00:00Z"}},
        {"audience": {"tags_all": ["novalue"]}},
        {"reward": {"kind": "coupon"}},
    ]
    for spec in bad:
        with pytest.raises(ValueError):
            _campaign(**spec)
