"""Queue tickets and visit ratings: the hub's kiosk endpoints and the kiosk's screens."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select
from textual.widgets import Digits, Input

from hub.embedded import EmbeddedHub
from hub.models.auth import Role
from hub.models.kiosk import VisitRating
from hub.models.registry import Store
from hub.services.kiosk import MINUTES_PER_CUSTOMER, QUEUE_WINDOW
from kiosk.screens.counter import QueueScreen, RatingScreen
from kiosk.screens.home import HomeScreen
from kiosk.screens.identify import IdentifyScreen
from storewave.demo_world import sign_in_phone
from tests.kiosk.conftest import STORE, make_app
from tests.kiosk.helpers import hear_token, screen_text, wait_until

SIZE = (100, 40)


def test_tickets_count_up_with_the_wait_and_ratings_check_input(
    hub: EmbeddedHub, kiosk_key: str
) -> None:
    """Numbers rise, the wait grows with the queue, old tickets drop out; bad input is refused."""
    hub.clock.advance(QUEUE_WINDOW + timedelta(minutes=1))  # type: ignore[attr-defined]
    with hub.client(kiosk_key) as kiosk:
        first = kiosk.post(f"/v1/stores/{STORE}/queue-tickets", json={}).json()
        second = kiosk.post(f"/v1/stores/{STORE}/queue-tickets", json={}).json()
        assert second["number"] == first["number"] + 1
        assert second["ahead"] == first["ahead"] + 1
        assert second["estimated_wait_min"] == second["ahead"] * MINUTES_PER_CUSTOMER
        hub.clock.advance(QUEUE_WINDOW + timedelta(minutes=1))  # type: ignore[attr-defined]
        later = kiosk.post(f"/v1/stores/{STORE}/queue-tickets", json={}).json()
        assert later["ahead"] == 0 and later["number"] == second["number"] + 1
        unknown = kiosk.post(f"/v1/stores/{STORE}/queue-tickets", json={"customer_id": "cus_x"})
        assert unknown.status_code == 404
        for stars in (0, 6):
            bad = kiosk.post(f"/v1/stores/{STORE}/visit-ratings", json={"stars": stars})
            assert bad.status_code == 422 and "stars" in bad.text
        too_long = {"stars": 3, "comment": "x" * 501}
        assert kiosk.post(f"/v1/stores/{STORE}/visit-ratings", json=too_long).status_code == 422
    other = hub.api_key(Role.KIOSK, store_id="xm-siming")
    with hub.client(other) as kiosk:
        assert kiosk.post(f"/v1/stores/{STORE}/queue-tickets", json={}).status_code == 404
        refused = kiosk.post(f"/v1/stores/{STORE}/visit-ratings", json={"stars": 4})
        assert refused.status_code == 404


async def test_queue_ticket_and_rating_from_the_home_screen(
    hub: EmbeddedHub, kiosk_key: str, phone: str
) -> None:
    """Home -> ticket number in large digits with the wait; home -> 4 stars + comment -> saved."""
    own = sign_in_phone(hub, phone, "own-phone")
    customer_id = own.get("/v1/me").json()["id"]
    token = own.post("/v1/phone/tokens").json()["token"]
    own.close()
    app = make_app(hub.url, kiosk_key)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, IdentifyScreen), "identify")
        screen = app.screen
        assert isinstance(screen, IdentifyScreen)
        await wait_until(pilot, lambda: screen._baseline is not None, "first presence poll")
        hear_token(hub, token)
        await wait_until(pilot, lambda: app.customer is not None and app.customer.loaded, "home")

        await pilot.click("#queue")
        await wait_until(pilot, lambda: isinstance(app.screen, QueueScreen), "queue")
        queue = app.screen
        assert isinstance(queue, QueueScreen)
        await wait_until(pilot, lambda: queue.ticket is not None, "a ticket")
        assert queue.query_one("#ticket-number", Digits).value == str(queue.ticket["number"])
        assert "ahead of you · about" in screen_text(app)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen), "home again")

        await pilot.click("#rate")
        await wait_until(pilot, lambda: isinstance(app.screen, RatingScreen), "rating")
        await pilot.press("tab", "tab", "tab", "tab", "tab")  # to the comment field
        await pilot.press("enter")
        await wait_until(pilot, lambda: "pick 1 to 5 stars" in screen_text(app), "stars asked")
        await pilot.click("#star-4")
        app.screen.query_one("#comment", Input).value = "Fast and friendly"
        await pilot.click("#send")
        await wait_until(pilot, lambda: "Thank you for your rating" in screen_text(app), "thanks")
    with Session(hub.engine) as session:
        rows = session.exec(select(VisitRating).where(VisitRating.customer_id == customer_id)).all()
    assert [(r.stars, r.comment, r.store_id) for r in rows] == [(4, "Fast and friendly", STORE)]


def test_staff_call_next_serves_in_order_and_the_wait_follows(
    hub: EmbeddedHub, kiosk_key: str
) -> None:
    """Called tickets stop counting as waiting; the lowest waits first; an empty queue says so."""
    hub.clock.advance(QUEUE_WINDOW + timedelta(minutes=1))  # type: ignore[attr-defined]
    staff_key = hub.api_key(Role.STORE_STAFF, store_id=STORE)
    call = f"/v1/stores/{STORE}/queue-tickets/call-next"
    with hub.client(kiosk_key) as kiosk, hub.client(staff_key) as staff:
        taken = [kiosk.post(f"/v1/stores/{STORE}/queue-tickets", json={}).json() for _ in range(3)]
        assert [t["ahead"] for t in taken] == [0, 1, 2]
        assert taken[0]["now_serving"] is None  # nobody called yet today
        first = staff.post(call)
        assert first.status_code == 200
        assert (first.json()["number"], first.json()["waiting"]) == (taken[0]["number"], 2)
        assert staff.post(call).json()["number"] == taken[1]["number"]
        after = kiosk.post(f"/v1/stores/{STORE}/queue-tickets", json={}).json()
        assert after["ahead"] == 1 and after["estimated_wait_min"] == MINUTES_PER_CUSTOMER
        assert after["now_serving"] == taken[1]["number"]
        assert staff.post(call).json()["number"] == taken[2]["number"]
        assert staff.post(call).json()["number"] == after["number"]
        empty = staff.post(call).json()
        assert empty["number"] is None and empty["waiting"] == 0
        assert kiosk.post(call).status_code == 403
    with hub.client(hub.api_key(Role.STORE_STAFF, store_id="xm-siming")) as elsewhere:
        assert elsewhere.post(call).status_code == 404


def test_rating_report_per_store_day_hides_small_groups(hub: EmbeddedHub, kiosk_key: str) -> None:
    """Five ratings on a day show mean and spread; two the next day show only their count."""
    hub.clock.advance(timedelta(days=1))  # type: ignore[attr-defined]
    with Session(hub.engine) as session:
        store = session.get(Store, STORE)
        assert store is not None
        day_one = hub.clock.now().astimezone(ZoneInfo(store.timezone)).date()
    with hub.client(kiosk_key) as kiosk:
        for stars in (5, 5, 4, 3, 1):
            assert kiosk.post(f"/v1/stores/{STORE}/visit-ratings",
                              json={"stars": stars}).status_code == 201
        hub.clock.advance(timedelta(days=1))  # type: ignore[attr-defined]
        for stars in (2, 5):
            assert kiosk.post(f"/v1/stores/{STORE}/visit-ratings",
                              json={"stars": stars}).status_code == 201
    query = {"start": day_one.isoformat(), "end": (day_one + timedelta(days=1)).isoformat()}
    staff_key = hub.api_key(Role.STORE_STAFF, store_id=STORE)
    with hub.client(staff_key) as staff:
        rows = staff.get("/v1/analytics/visit-ratings", params=query).json()
    assert [(r["store_id"], r["day"]) for r in rows] == [
        (STORE, day_one.isoformat()), (STORE, (day_one + timedelta(days=1)).isoformat())
    ]
    full, small = rows
    assert full["ratings"] == 5 and not full["suppressed"] and full["mean_stars"] == 3.6
    assert full["distribution"] == {"1": 1, "2": 0, "3": 1, "4": 1, "5": 2}
    assert small == {**small, "ratings": 2, "suppressed": True, "mean_stars": None,
                     "distribution": None}
    with hub.client(hub.api_key(Role.REGIONAL_OPS, region_id="xm")) as ops_xm:
        assert ops_xm.get("/v1/analytics/visit-ratings", params=query).json() == []
    with hub.client(hub.api_key(Role.REGIONAL_OPS, region_id="fz")) as ops_fz:
        assert len(ops_fz.get("/v1/analytics/visit-ratings", params=query).json()) == 2
        backwards = {"start": query["end"], "end": query["start"]}
        assert ops_fz.get("/v1/analytics/visit-ratings", params=backwards).status_code == 422
    with hub.client(kiosk_key) as kiosk:
        assert kiosk.get("/v1/analytics/visit-ratings", params=query).status_code == 403
