"""Journey definitions: validation with located errors, JSON and YAML over the API, versions."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from hub.clock import ManualClock
from hub.models.auth import Role
from hub.services.arc import ARC_JOURNEY
from hub.services.journeys import DefinitionError, parse_spec
from tests.hub.arc.helpers import make_customer
from tests.hub.factories import api_key, auth

GOOD: dict[str, Any] = {
    "name": "welcome",
    "start": "hi",
    "steps": [
        {"id": "hi", "type": "send", "channel": "sms", "template": "Hi", "next": "w"},
        {"id": "w", "type": "wait", "duration": "PT1H", "next": None},
    ],
}


def _with(**changes: Any) -> dict[str, Any]:
    """GOOD with top-level changes."""
    return {**GOOD, **changes}


def _step(index: int, **changes: Any) -> dict[str, Any]:
    """GOOD with one step changed."""
    steps = [dict(s) for s in GOOD["steps"]]
    steps[index].update(changes)
    return _with(steps=steps)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ([], "must be a JSON/YAML object"),
        (_with(start="nowhere"), "start step 'nowhere' is not defined"),
        (_step(0, next="ghost"), "step 'hi' goes to unknown step 'ghost'"),
        (_step(1, next="hi"), "steps form a loop: hi -> w -> hi"),
        (_step(0, channel="fax"), "steps[0] (id 'hi').send.channel: Input should be"),
        (_step(1, until="$x"), "exactly one of 'duration' or 'until'"),
        (_step(1, duration="-PT1H"), "duration must be positive"),
        (_step(0, type="teleport"), "does not match any of the expected tags"),
        (_step(0, colour="red"), "colour: Extra inputs are not permitted"),
        (_with(steps=[*GOOD["steps"], GOOD["steps"][1]]), "duplicate step ids: w"),
        (_with(max_length="P4000D"), "max_length must be positive and at most 366 days"),
        (_with(quiet_hours={"start": "21:00", "end": "08:00", "timezone": "Mars/Base"}),
         "unknown time zone 'Mars/Base'"),
        (_with(entry="sometimes"), "entry: Input should be"),
        (_with(steps=[{"id": "b", "type": "branch", "otherwise": "b2", "cases": [
            {"when": [{"var": "n", "op": "gt", "value": "four"}], "next": "b2"}]},
            {"id": "b2", "type": "end"}], start="b"), "op 'gt' needs a number value"),
    ],
)
def test_invalid_definitions_are_refused_with_located_errors(doc: Any, expected: str) -> None:
    """Each broken definition names what is wrong and where."""
    with pytest.raises(DefinitionError) as info:
        parse_spec(doc)
    assert expected in str(info.value)


def test_the_shipped_arc_definition_is_valid() -> None:
    """ARC is data that passes the same validation as any published journey."""
    spec = parse_spec(ARC_JOURNEY)
    assert spec.exit_on == ["trial.converted"]
    assert {s.type for s in spec.steps} == {
        "send", "wait", "wait_event", "branch", "task", "tag", "end"}


def test_publish_json_and_yaml_over_the_api(
    client: TestClient, arc_engine: Engine, clock: ManualClock
) -> None:
    """JSON makes v1, YAML makes v2; a bad one is a 422 that names the problem; enrol works."""
    admin = auth(api_key(arc_engine, clock, Role.ADMIN))
    v1 = client.post("/v1/journeys", headers=admin, json=GOOD)
    assert v1.status_code == 201, v1.text
    v2 = client.post("/v1/journeys", headers={**admin, "Content-Type": "application/yaml"},
                     content=yaml.safe_dump(GOOD))
    assert (v1.json()["version"], v2.json()["version"]) == (1, 2)
    bad = client.post("/v1/journeys", headers=admin, json=_step(0, next="ghost"))
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_definition"
    assert "step 'hi' goes to unknown step 'ghost'" in bad.json()["detail"]
    garbage = client.post("/v1/journeys", headers={**admin, "Content-Type": "application/yaml"},
                          content=b"steps: [unclosed")
    assert garbage.status_code == 422 and "not valid JSON/YAML" in garbage.json()["detail"]
    assert [d["version"] for d in client.get("/v1/journeys?name=welcome",
                                             headers=admin).json()] == [1, 2]
    cid, _ = make_customer(arc_engine, clock)
    inst = client.post("/v1/journeys/welcome/instances", headers=admin,
                       json={"customer_id": cid})
    assert inst.status_code == 201, inst.text
    assert inst.json()["definition_id"] == v2.json()["id"]
    assert inst.json()["waiting"] == "wait"
    again = client.post("/v1/journeys/welcome/instances", headers=admin,
                        json={"customer_id": cid})
    assert (again.status_code, again.json()["code"]) == (409, "already_active")
    ended = client.post(f"/v1/customers/{cid}/events", headers=admin,
                        json={"event": "anything", "payload": {"k": 1}})
    assert ended.json() == {"instances": 0}
    got = client.get(f"/v1/journey-instances/{inst.json()['id']}", headers=admin).json()
    assert got["history"][0][0] == "hi"
