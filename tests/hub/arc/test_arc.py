"""The ARC journey end to end over the API: converter, referrer, low user, price non-converter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlmodel import Session

from hub.clock import ManualClock
from hub.models.auth import Role
from hub.models.customers import CustomerTag
from hub.models.journeys import StaffTask
from hub.models.services_catalogue import DataService, Subscription
from hub.services import arc, outbox
from tests.hub.arc.helpers import instance, make_customer, messages, run_until, steps_sent
from tests.hub.conftest import START
from tests.hub.factories import CRYPTO, api_key, auth, seed

DAY = timedelta(days=1)


@dataclass
class Arc:
    """The seeded world: a Gulou staff key, an admin key (gateway, usage feed)."""

    client: TestClient
    engine: Engine
    clock: ManualClock
    staff: dict[str, str]
    admin: dict[str, str]

    def start(self, cid: str, service: str = "video-pack", channel: str = "front_desk",
              handset: list[str] | None = None) -> Any:
        """Start a trial at Gulou's front desk (or the given channel)."""
        return self.client.post("/v1/trials", headers=self.staff, json={
            "service_id": service, "customer_id": cid, "store_id": "fz-gulou",
            "channel": channel, "staff_id": "emp-7", "handset": handset or ["4g", "volte"]})

    def reply(self, phone: str, text: str) -> str:
        """A customer's SMS reply through the gateway endpoint; returns the action."""
        resp = self.client.post("/v1/outbox/replies", headers=self.admin,
                                json={"phone": phone, "text": text})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["action"])

    def usage(self, trial_id: str, mb: float) -> None:
        """Report trial usage as the network would."""
        resp = self.client.post(f"/v1/trials/{trial_id}/usage", headers=self.admin,
                                json={"usage_mb": mb})
        assert resp.status_code == 200, resp.text

    def to_day(self, day: float, dispatch: bool = True) -> None:
        """Move time to ``day`` of the trial, running timers (and the outbox) twice a day."""
        while self.clock.now() < START + day * DAY:
            run_until(self.engine, self.clock,
                      min(START + day * DAY, self.clock.now() + DAY / 2), step=DAY / 2)
            if dispatch:
                outbox.dispatch_due(self.engine, CRYPTO, outbox.LogSender(), self.clock)


@pytest.fixture
def world(client: TestClient, arc_engine: Engine, clock: ManualClock) -> Arc:
    """Seeded registry and catalogue, staff and admin keys."""
    seed(arc_engine, clock)  # the seeds load the catalogue beside the registry
    with Session(arc_engine) as s:
        assert len(s.execute(select(DataService)).scalars().all()) == 4
        assert arc.load_service_catalogue(s) == 0  # idempotent
        s.commit()
    return Arc(client, arc_engine, clock,
               auth(api_key(arc_engine, clock, Role.STORE_STAFF, store_id="fz-gulou")),
               auth(api_key(arc_engine, clock, Role.ADMIN)))


def test_converter_exits_and_queued_reminders_are_cancelled(world: Arc) -> None:
    """Manual, rating ask, reminder, call; a Y reply converts and cancels what is queued."""
    cid, phone = make_customer(world.engine, world.clock)
    resp = world.start(cid)
    assert resp.status_code == 201, resp.text
    trial = resp.json()
    assert (trial["channel"], trial["staff_id"], trial["city"]) == ("front_desk", "emp-7", "fz")
    assert trial["ends_at"].startswith((START + 30 * DAY).date().isoformat())
    world.usage(trial["id"], 800)
    world.to_day(26.9)
    world.to_day(27.5, dispatch=False)
    assert steps_sent(world.engine, cid) == ["manual", "rate", "remind", "call"]
    with Session(world.engine) as s:
        task = s.execute(select(StaffTask)).scalar_one()
    assert (task.kind, task.store_id, task.state) == ("call", "fz-gulou", "open")
    assert world.client.get("/v1/stores/fz-gulou/tasks", headers=world.staff).json()[0][
        "title"].startswith("Reminder call: Video data pack")
    assert world.reply(phone, "Y") == "converted"
    got = world.client.get(f"/v1/trials/{trial['id']}", headers=world.staff).json()
    assert (got["state"], got["convert_channel"]) == ("converted", "reply")
    assert [st for _, _, st in messages(world.engine, cid)] == ["sent"] * 2 + ["cancelled"] * 2
    inst = instance(world.engine, trial["instance_id"])
    assert (inst.state, inst.exit_reason) == ("exited", "event:trial.converted")
    with Session(world.engine) as s:
        assert s.execute(select(StaffTask.state)).scalar_one() == "cancelled"
        sub = s.execute(select(Subscription)).scalar_one()
        assert (sub.customer_id, sub.price_fen) == (cid, 300)
    world.to_day(40)
    assert steps_sent(world.engine, cid) == ["manual", "rate", "remind", "call"]
    again = world.client.post(f"/v1/trials/{trial['id']}/convert", headers=world.staff,
                              json={"channel": "agent"})
    assert again.status_code == 409
    assert world.start(cid).json()["code"] == "already_subscribed"


def test_high_rater_gets_a_referral_invitation(world: Arc) -> None:
    """A 5 by reply after the day-15 question: referral SMS at once; an agent converts later."""
    cid, phone = make_customer(world.engine, world.clock)
    trial = world.start(cid, channel="kiosk").json()
    world.usage(trial["id"], 500)
    world.to_day(15.2)
    assert steps_sent(world.engine, cid) == ["manual", "rate"]
    assert world.reply(phone, "5") == "rated"
    assert steps_sent(world.engine, cid) == ["manual", "rate", "refer"]
    resp = world.client.post(f"/v1/trials/{trial['id']}/convert", headers=world.staff,
                             json={"channel": "agent"})
    assert resp.json()["rating"] == 5 and resp.json()["convert_channel"] == "agent"
    funnel = world.client.get("/v1/arc/funnel?by=channel", headers=world.admin).json()
    assert funnel["rows"] == [{"group": "kiosk", "started": 1, "cared": 1, "rated": 1,
                               "converted": 1, "conversion_rate": 1.0,
                               "ratings": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 1}}]


def test_low_and_silent_users_get_the_usage_helper(world: Arc) -> None:
    """10 MB by day 10 (below the 200 MB threshold), or no report at all: usage helper."""
    low, _ = make_customer(world.engine, world.clock)
    silent, _ = make_customer(world.engine, world.clock)
    busy, phone = make_customer(world.engine, world.clock)
    world.usage(world.start(low).json()["id"], 10)
    world.start(silent)
    world.usage(world.start(busy).json()["id"], 950)
    world.to_day(11)
    assert steps_sent(world.engine, low) == ["manual", "usage_helper"]
    assert steps_sent(world.engine, silent) == ["manual", "usage_helper"]
    assert steps_sent(world.engine, busy) == ["manual"]
    assert world.reply(phone, "3") == "rated"  # before the question: recorded, no referral
    world.to_day(21)
    assert steps_sent(world.engine, busy) == ["manual", "rate"]


def test_price_reason_non_converter_gets_bundle_and_tags(world: Arc) -> None:
    """Expiry: reason asked; PRICE -> bundle offer; tagged; look-alikes tagged for targeting."""
    cid, phone = make_customer(world.engine, world.clock, gender="female", age_band="25-34")
    twin, _ = make_customer(world.engine, world.clock, gender="female", age_band="25-34")
    other, _ = make_customer(world.engine, world.clock, gender="male", age_band="65+")
    trial = world.start(cid).json()
    world.usage(trial["id"], 300)
    world.to_day(30.3)
    assert steps_sent(world.engine, cid) == ["manual", "rate", "remind", "call", "ask_reason"]
    assert world.client.get(f"/v1/trials/{trial['id']}", headers=world.staff).json()[
        "state"] == "expired"
    assert world.reply(phone, "price") == "reason"
    assert steps_sent(world.engine, cid)[-1] == "bundle"
    inst = instance(world.engine, trial["instance_id"])
    assert (inst.state, inst.exit_reason) == ("completed", "not_converted")
    looks = world.client.post("/v1/services/video-pack/lookalikes", headers=world.admin)
    assert looks.json() == {"converter": 0, "non_converter": 1}
    with Session(world.engine) as s:
        tags = {(t.customer_id, t.name, t.value) for t in s.execute(select(CustomerTag)).scalars()}
    assert tags == {(cid, "arc_non_converter", "video-pack"),
                    (twin, "lookalike_non_converter", "video-pack")}
    assert other not in {c for c, _, _ in tags}
    got = world.client.get(f"/v1/trials/{trial['id']}", headers=world.staff).json()
    assert got["reason"] == "price"


def test_eligibility_is_checked_with_clear_errors(world: Arc) -> None:
    """Handset fit, consent, one trial per service, scope, input validation."""
    cid, _ = make_customer(world.engine, world.clock)
    no_consent, _ = make_customer(world.engine, world.clock, consent=False)
    resp = world.start(cid, service="hd-call", handset=["4g"])
    assert (resp.status_code, resp.json()["code"]) == (422, "handset_incompatible")
    assert "volte" in resp.json()["detail"]
    resp = world.start(no_consent)
    assert (resp.status_code, resp.json()["code"]) == (422, "no_consent")
    assert world.start(cid, service="nope").status_code == 404
    assert world.start(cid, channel="fax").status_code == 422
    assert world.start(cid).status_code == 201
    resp = world.start(cid)
    assert (resp.status_code, resp.json()["code"]) == (409, "already_trialled")
    siming = auth(api_key(world.engine, world.clock, Role.STORE_STAFF, store_id="xm-siming"))
    resp = world.client.post("/v1/trials", headers=siming, json={
        "service_id": "music-pack", "customer_id": cid, "store_id": "fz-gulou",
        "channel": "front_desk"})
    assert resp.status_code == 404
    assert world.client.post("/v1/trials/tri_x/feedback", headers=world.staff,
                             json={"rating": 4}).status_code == 404
    empty = world.client.post("/v1/trials/tri_x/feedback", headers=world.staff, json={})
    assert (empty.status_code, empty.json()["code"]) == (422, "empty_feedback")
    assert world.client.post("/v1/trials/tri_x/feedback", headers=world.staff,
                             json={"rating": 6}).status_code == 422


def test_funnel_csv_png_svg(world: Arc) -> None:
    """The funnel by service as CSV, PNG and SVG, with the 6.4% Shanxi reference."""
    for channel in ("front_desk", "app"):
        cid, _ = make_customer(world.engine, world.clock)
        world.start(cid, channel=channel)
    csv_text = world.client.get("/v1/arc/funnel?by=service&format=csv", headers=world.admin).text
    assert csv_text.splitlines()[0].startswith("group,started,cared,rated,converted")
    assert csv_text.splitlines()[1].startswith("video-pack,2,2,0,0,0.000000")
    png = world.client.get("/v1/arc/funnel?by=channel&format=png", headers=world.admin)
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    svg = world.client.get("/v1/arc/funnel?by=store&format=svg", headers=world.admin).text
    assert "<svg" in svg and "6.4%" in svg
    assert world.client.get("/v1/arc/funnel?by=planet", headers=world.admin).status_code == 422
    services = world.client.get("/v1/services").json()
    assert {s["id"] for s in services} == {"video-pack", "music-pack", "hd-call", "cloud-game"}
