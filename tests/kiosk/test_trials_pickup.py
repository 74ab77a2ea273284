"""Kiosk flows with Pilot against a real hub: try a service, keep it, pick up an online order."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input

from hub.embedded import EmbeddedHub
from hub.models.auth import Role
from hub.models.services_catalogue import Trial
from kiosk.app import KioskApp
from kiosk.screens.attract import AttractScreen
from kiosk.screens.common import KioskScreen
from kiosk.screens.home import HomeScreen
from kiosk.screens.identify import IdentifyScreen
from kiosk.screens.pickup import PickupScreen
from kiosk.screens.services import ServicesScreen
from kiosk.screens.trial import TrialScreen
from storewave.demo_world import read_sms_code, sign_in_phone
from tests.hub.oao.helpers import NEAR_GULOU
from tests.kiosk.conftest import STORE, make_app
from tests.kiosk.helpers import hear_token, screen_text, wait_until

SIZE = (100, 40)
ORDER_CODE = "wx-pickup-0001"


async def _presence_sign_in(pilot: Pilot[None], app: KioskApp, hub: EmbeddedHub,
                            token: str) -> None:
    """Attract -> identify -> the counter node hears the phone -> home, loaded."""
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, IdentifyScreen), "identify")
    screen = app.screen
    assert isinstance(screen, IdentifyScreen)
    await wait_until(pilot, lambda: screen._baseline is not None, "first poll")
    hear_token(hub, token)
    await wait_until(pilot, lambda: app.customer is not None and app.customer.loaded, "home")


async def _press(pilot: Pilot[None], app: KioskApp, selector: str) -> None:
    """Focus a button (scrolling it into view) and press Enter, as a keyboard user would."""
    app.screen.query_one(selector).focus()
    await pilot.press("enter")


async def test_try_a_service_free_then_keep_it(
    hub: EmbeddedHub, kiosk_key: str, phone: str
) -> None:
    """Services -> try: wrong phone and no consent are explained; ticked -> trial; keep -> paid."""
    own = sign_in_phone(hub, phone, "own-phone")
    customer_id = own.get("/v1/me").json()["id"]
    assert own.patch("/v1/me", json={"consent_marketing_sms": False}).status_code == 200
    token = own.post("/v1/phone/tokens").json()["token"]
    own.close()
    app = make_app(hub.url, kiosk_key)
    async with app.run_test(size=SIZE) as pilot:
        await _presence_sign_in(pilot, app, hub, token)
        await pilot.click("#services")
        await wait_until(pilot, lambda: "Try free for 30 days" in screen_text(app), "try buttons")

        await _press(pilot, app, "ServiceAction.svc-cloud-game")
        await wait_until(pilot, lambda: isinstance(app.screen, TrialScreen), "trial screen")
        assert "Try 5G cloud gaming free" in screen_text(app)
        await pilot.click("#cap-4g")
        await pilot.click("#consent")
        await pilot.click("#go")
        await wait_until(pilot, lambda: "needs a phone with 5G" in screen_text(app), "handset")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ServicesScreen), "catalogue")

        await _press(pilot, app, "ServiceAction.svc-video-pack")
        await wait_until(pilot, lambda: isinstance(app.screen, TrialScreen), "trial screen")
        trial_screen = app.screen
        await pilot.click("#cap-4g")
        await pilot.click("#go")
        await wait_until(pilot, lambda: "Please tick the box" in screen_text(app), "consent asked")
        assert trial_screen.query_one("#cap-4g", Checkbox).value
        await pilot.click("#consent")
        await pilot.click("#go")
        ends = (hub.clock.now() + timedelta(days=30)).date().isoformat()
        await wait_until(pilot, lambda: f"runs until {ends}" in screen_text(app), "started")
        await pilot.click("#trial-back")
        await wait_until(pilot, lambda: "Keep it · 3 yuan a month" in screen_text(app), "keep")
        assert f"On free trial until {ends}" in screen_text(app)

        await _press(pilot, app, "ServiceAction.svc-video-pack")
        await wait_until(pilot, lambda: "Keep Video data pack 20 GB?" in screen_text(app), "keep")
        await pilot.press("enter")  # the keep button has the focus
        await wait_until(pilot, lambda: "is yours" in screen_text(app), "kept")
        await pilot.press("escape")
        await wait_until(pilot, lambda: "✓ You have this service" in screen_text(app), "held")
    with Session(hub.engine) as session:
        trials = session.exec(select(Trial).where(Trial.customer_id == customer_id)).all()
    assert [(t.service_id, t.channel, t.state, t.convert_channel) for t in trials] == [
        ("video-pack", "kiosk", "converted", "kiosk")
    ]


def _order_ready(hub: EmbeddedHub, customer_id: str) -> str:
    """The customer's SIM order, dispatched to Gulou and accepted by its staff."""
    start = hub.clock.now() + timedelta(hours=2)
    body = {
        "client_order_key": ORDER_CODE, "channel": "web_hall", "product": "sim_card",
        "region_id": "fz", "customer_id": customer_id, "address": "12 Dongjie Rd",
        "latitude": NEAR_GULOU[0], "longitude": NEAR_GULOU[1],
        "window_start": start.isoformat(), "window_end": (start + timedelta(hours=4)).isoformat(),
    }
    with hub.client() as admin:
        order = admin.post("/v1/orders", json=body).json()
    assert order["store_id"] == STORE, order
    with hub.client(hub.api_key(Role.STORE_STAFF, store_id=STORE)) as staff:
        assert staff.post(f"/v1/orders/{order['id']}/accept").status_code == 200
    return str(order["id"])


async def test_pick_up_an_order_by_code_then_idle_reset_forgets_it(
    hub: EmbeddedHub, kiosk_key: str, phone: str
) -> None:
    """Number + code sign-in -> pickup: a wrong number, then the right one; idle -> all gone."""
    own = sign_in_phone(hub, phone, "own-phone")
    customer_id = own.get("/v1/me").json()["id"]
    own.close()
    order_id = _order_ready(hub, customer_id)
    now = [0.0]
    app = make_app(hub.url, kiosk_key, idle_timeout_s=30.0, monotonic=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, IdentifyScreen), "identify")
        await pilot.press(*phone, "enter")
        await wait_until(pilot, lambda: app.focused is app.screen.query_one("#code"), "code sent")
        await pilot.press(*read_sms_code(hub, phone), "enter")
        await wait_until(pilot, lambda: app.customer is not None and app.customer.loaded, "home")
        await pilot.click("#pickup")
        await wait_until(pilot, lambda: isinstance(app.screen, PickupScreen), "pickup screen")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "type your order number" in screen_text(app), "asked")
        await pilot.press(*"wx-nope", "enter")
        await wait_until(pilot, lambda: "found no order" in screen_text(app), "not found")
        app.screen.query_one("#order-code", Input).value = ORDER_CODE
        await pilot.click("#find")
        await wait_until(pilot, lambda: "SIM card (order" in screen_text(app), "ready")
        assert "go to the counter" in screen_text(app)
        await _press(pilot, app, "#order-code")  # asking again is harmless
        await wait_until(pilot, lambda: "already know you are here" in screen_text(app), "again")

        now[0] += 31.0
        await wait_until(pilot, lambda: isinstance(app.screen, AttractScreen), "idle reset")
        await app.workers.wait_for_complete()
        assert app.customer is None and len(app.screen_stack) == 2
        assert ORDER_CODE not in repr(vars(app)) and customer_id not in repr(vars(app))
        assert ORDER_CODE not in screen_text(app)
    with hub.client() as admin:
        assert admin.get(f"/v1/orders/{order_id}").json()["status"] == "in_progress"


async def test_default_language_and_the_store_time_zone(
    hub: EmbeddedHub, kiosk_key: str
) -> None:
    """A Chinese-default kiosk opens in Chinese, back after the reset; dates in store time."""
    app = make_app(hub.url, kiosk_key, default_language="zh")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "点击开始" in screen_text(app), "Chinese attract")
        await wait_until(pilot, lambda: "Gulou flagship" in screen_text(app), "store profile")
        # Dates read in the store's zone: 17:00 UTC is already the next day in Fuzhou.
        assert isinstance(app.screen, KioskScreen)
        assert app.screen.local_date("2026-12-29T17:00:00+00:00") == "2026-12-30"
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, IdentifyScreen), "identify")
        await pilot.press("f2")
        await wait_until(pilot, lambda: "Send me a code" in screen_text(app), "English")
        app.reset()
        await wait_until(pilot, lambda: "点击开始" in screen_text(app), "Chinese again")
        assert isinstance(app.screen, AttractScreen) and not isinstance(app.screen, HomeScreen)
