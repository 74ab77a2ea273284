"""The journey engine: versioned definitions as data, instances advanced on durable timers."""

from __future__ import annotations

from hub.services.journeys.definitions import latest, publish, spec_of, versions
from hub.services.journeys.engine import (
    STEP_TIMER,
    Enrolment,
    close_task,
    deliver_event,
    deliver_events,
    enrol,
    enrol_many,
    exit_instance,
    get_instance,
)
from hub.services.journeys.schema import DefinitionError, JourneySpec, parse_spec

__all__ = [
    "STEP_TIMER",
    "DefinitionError",
    "Enrolment",
    "JourneySpec",
    "close_task",
    "deliver_event",
    "deliver_events",
    "enrol",
    "enrol_many",
    "exit_instance",
    "get_instance",
    "latest",
    "parse_spec",
    "publish",
    "spec_of",
    "versions",
]
