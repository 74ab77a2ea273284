"""Snapshots of the kiosk's main screens at a fixed size (pytest-textual-snapshot)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from hub.embedded import EmbeddedHub
from kiosk.app import KioskApp
from kiosk.screens.home import HomeScreen
from kiosk.screens.identify import IdentifyScreen
from kiosk.screens.pickup import PickupScreen
from kiosk.screens.trial import TrialScreen
from storewave.demo_world import read_sms_code, sign_in_phone
from tests.hub.campaigns.helpers import live_campaign, template
from tests.kiosk.conftest import make_app
from tests.kiosk.helpers import hear_token, later, screen_text, wait_until

# A kiosk touch screen in landscape, in terminal cells.
SIZE = (100, 34)
SNAP_PHONE = "+8613700000042"
SNAP_CODE = "GULOU-SNAP-0042"
Snap = Callable[..., bool]


def _blink_off(app: KioskApp) -> None:
    """A blinking cursor would make two screenshots of the same screen differ."""
    for field in app.screen.query(Input):
        field.cursor_blink = False


async def _store_named(pilot: Pilot[Any]) -> None:
    """Wait for the store's name to load."""
    await wait_until(pilot, lambda: "Gulou flagship" in screen_text(pilot.app), "store name")


def test_attract_screen(snap_compare: Snap, hub: EmbeddedHub, kiosk_key: str) -> None:
    """Welcome, what the kiosk does, touch to start, language."""
    assert snap_compare(make_app(hub.url, kiosk_key), terminal_size=SIZE, run_before=_store_named)


def test_attract_screen_in_chinese(snap_compare: Snap, hub: EmbeddedHub, kiosk_key: str) -> None:
    """The same screen in Simplified Chinese."""

    async def chinese(pilot: Pilot[Any]) -> None:
        """Switch to Chinese once the store name is in."""
        await _store_named(pilot)
        await pilot.press("f2")
        await wait_until(pilot, lambda: "点击开始" in screen_text(pilot.app), "Chinese")

    assert snap_compare(make_app(hub.url, kiosk_key), terminal_size=SIZE, run_before=chinese)


def test_identify_screen(snap_compare: Snap, hub: EmbeddedHub, kiosk_key: str) -> None:
    """Hold your phone near, or number + code."""

    async def identify(pilot: Pilot[Any]) -> None:
        """Open the identify screen, cursor steady."""
        await _store_named(pilot)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, IdentifyScreen), "identify")
        _blink_off(pilot.app)  # type: ignore[arg-type]
        await pilot.pause()

    assert snap_compare(make_app(hub.url, kiosk_key), terminal_size=SIZE, run_before=identify)


def test_home_screen(snap_compare: Snap, hub: EmbeddedHub, kiosk_key: str) -> None:
    """Points, a coupon in large type with its expiry, an offer from the kiosk sign-in."""
    live_campaign(
        hub.engine, hub.clock, trigger="kiosk_signin", region_id="fz",  # type: ignore[arg-type]
        reward={"kind": "points", "points": 5, "title": "Thanks for stopping by"},
    )
    own = sign_in_phone(hub, SNAP_PHONE, "own-phone")
    customer_id = own.get("/v1/me").json()["id"]
    own.close()
    tpl = template(hub.engine, hub.clock)  # type: ignore[arg-type]
    with hub.client() as admin:
        admin.post(f"/v1/coupon-templates/{tpl}/pool", json={"codes": [SNAP_CODE]})
        admin.post(f"/v1/coupon-templates/{tpl}/issue", json={"customer_id": customer_id})

    async def home(pilot: Pilot[Any]) -> None:
        """Sign in by number and code, wait for the data."""
        app = pilot.app
        assert isinstance(app, KioskApp)
        await _store_named(pilot)
        await pilot.press("enter", *SNAP_PHONE, "enter")
        await wait_until(pilot, lambda: app.focused is app.screen.query_one("#code"), "code")
        await pilot.press(*read_sms_code(hub, SNAP_PHONE), "enter")
        await wait_until(pilot, lambda: app.customer is not None and app.customer.loaded, "home")
        assert isinstance(app.screen, HomeScreen)
        await pilot.pause()

    assert snap_compare(make_app(hub.url, kiosk_key), terminal_size=SIZE, run_before=home)


async def _signed_in_by_presence(pilot: Pilot[Any], hub: EmbeddedHub, token: str) -> KioskApp:
    """Attract -> identify -> the counter node hears the phone -> home, loaded."""
    app = pilot.app
    assert isinstance(app, KioskApp)
    await _store_named(pilot)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, IdentifyScreen), "identify")
    screen = app.screen
    assert isinstance(screen, IdentifyScreen)
    await wait_until(pilot, lambda: screen._baseline is not None, "first poll")
    later(hub, 1.0)  # a hearing newer than any before the screen opened
    hear_token(hub, token)
    await wait_until(pilot, lambda: app.customer is not None and app.customer.loaded, "home")
    return app


def _phone_with_token(hub: EmbeddedHub, phone: str) -> tuple[str, str]:
    """A signed-up customer's id and a fresh phone token."""
    own = sign_in_phone(hub, phone, "own-phone")
    customer_id = own.get("/v1/me").json()["id"]
    token = own.post("/v1/phone/tokens").json()["token"]
    own.close()
    return customer_id, token


def test_services_screen_with_trials(snap_compare: Snap, hub: EmbeddedHub,
                                     kiosk_key: str) -> None:
    """The catalogue with what the customer can do: keep a running trial, try the others."""
    customer_id, token = _phone_with_token(hub, "+8613700000043")
    hear_token(hub, token)
    with hub.client(kiosk_key) as kiosk:
        started = kiosk.post("/v1/stores/fz-gulou/kiosk/trials", json={
            "customer_id": customer_id, "service_id": "video-pack", "handset": ["4g"]})
        assert started.status_code == 201, started.text

    async def services(pilot: Pilot[Any]) -> None:
        """Sign in by presence, open the catalogue, wait for the buttons."""
        app = await _signed_in_by_presence(pilot, hub, token)
        await pilot.click("#services")
        await wait_until(pilot, lambda: "Keep it · 3 yuan" in screen_text(app), "standing")
        await pilot.pause()

    assert snap_compare(make_app(hub.url, kiosk_key), terminal_size=SIZE, run_before=services)


def test_trial_screen(snap_compare: Snap, hub: EmbeddedHub, kiosk_key: str) -> None:
    """Try a service free: terms, what the phone has, the consent box, start."""
    _, token = _phone_with_token(hub, "+8613700000044")

    async def trial(pilot: Pilot[Any]) -> None:
        """Presence sign-in, catalogue, Try on the HD calling service."""
        app = await _signed_in_by_presence(pilot, hub, token)
        await pilot.click("#services")
        await wait_until(pilot, lambda: "Try free for 30 days" in screen_text(app), "buttons")
        app.screen.query_one("ServiceAction.svc-hd-call").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TrialScreen), "trial")
        await pilot.pause()

    assert snap_compare(make_app(hub.url, kiosk_key), terminal_size=SIZE, run_before=trial)


def test_pickup_screen(snap_compare: Snap, hub: EmbeddedHub, kiosk_key: str) -> None:
    """Pick up an online order: the number field and a plain answer."""
    _, token = _phone_with_token(hub, "+8613700000045")

    async def pickup(pilot: Pilot[Any]) -> None:
        """Presence sign-in, pickup, an unknown number."""
        app = await _signed_in_by_presence(pilot, hub, token)
        await pilot.click("#pickup")
        await wait_until(pilot, lambda: isinstance(app.screen, PickupScreen), "pickup")
        await pilot.press(*"WX-0000", "enter")
        await wait_until(pilot, lambda: "found no order" in screen_text(app), "answer")
        _blink_off(app)
        await pilot.pause()

    assert snap_compare(make_app(hub.url, kiosk_key), terminal_size=SIZE, run_before=pickup)
