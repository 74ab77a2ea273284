"""The ARC benchmark's own checks: exact message counts at a small N, nothing left behind."""

from __future__ import annotations

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from hub.models.customers import Customer, OutboxMessage
from hub.models.journeys import JourneyDefinition, JourneyInstance, OutboxDelivery
from hub.models.timers import Timer
from hub.services import journeys
from hub.services.arc import ARC_JOURNEY
from hub.services.journeys import bench

PREFIXES = ("cus_sT_", "cus_bT_")


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def test_small_run_counts_what_the_definition_implies_and_cleans_up(arc_engine: Engine) -> None:
    """Both halves of a run (one at a time, set-based) queue exactly the implied messages;
    the clean-up leaves no customer, instance, message, timer or definition behind."""
    with Session(arc_engine) as s:
        definition_id = journeys.publish(s, ARC_JOURNEY, bench.START).id
        s.commit()
    result = bench._run(arc_engine, 300, 7, PREFIXES)
    assert result["messages"] == result["messages_implied"] > 300
    assert result["duplicates"] == 0
    base = result["baseline_one_at_a_time"]
    assert base["instances"] == bench.BASELINE_MIN
    assert base["messages"] == base["messages_implied"] > 100
    assert base["duplicates"] == 0
    assert _count(arc_engine, Timer) > 0
    bench._clean_up(arc_engine, PREFIXES, definition_id)
    for model in (Customer, JourneyInstance, OutboxMessage, OutboxDelivery, Timer,
                  JourneyDefinition):
        assert _count(arc_engine, model) == 0, model.__name__
