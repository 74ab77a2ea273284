"""Kiosk flows with Pilot against a real hub: attract, phone + code, token presence, reset."""

from __future__ import annotations

import httpx
import pytest
from textual.widgets import Digits, Input

from hub.embedded import EmbeddedHub
from hub.models.auth import Role
from kiosk.screens.attract import AttractScreen
from kiosk.screens.home import HomeScreen, spaced
from kiosk.screens.identify import IdentifyScreen
from storewave.demo_world import read_sms_code, sign_in_phone
from tests.hub.campaigns.helpers import live_campaign, template
from tests.kiosk.conftest import STORE, make_app
from tests.kiosk.helpers import hear_token, screen_text, wait_until

SIZE = (100, 40)
SIGNIN_BONUS = 5
POOL_CODE = "GULOU-KIOSK-0001"


@pytest.fixture(scope="module")
def campaign(hub: EmbeddedHub) -> str:
    """A live kiosk sign-in campaign giving points in the test store's region."""
    return live_campaign(
        hub.engine, hub.clock, trigger="kiosk_signin", region_id="fz",  # type: ignore[arg-type]
        reward={"kind": "points", "points": SIGNIN_BONUS, "title": "Welcome back"},
    )


def _coupon_for(hub: EmbeddedHub, customer_id: str, code: str) -> None:
    """Issue the customer a coupon with a known code (pool import, then issue)."""
    tpl = template(hub.engine, hub.clock)  # type: ignore[arg-type]
    with hub.client() as admin:
        assert admin.post(f"/v1/coupon-templates/{tpl}/pool", json={"codes": [code]}).is_success
        issued = admin.post(f"/v1/coupon-templates/{tpl}/issue", json={"customer_id": customer_id})
        assert issued.json()["code"] == code


async def test_attract_shows_store_and_starts(hub: EmbeddedHub, kiosk_key: str) -> None:
    """The attract screen names the store; a touch opens identification; Esc goes back."""
    app = make_app(hub.url, kiosk_key)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "Gulou flagship" in screen_text(app), "the store name")
        assert "Touch to start" in screen_text(app)
        await pilot.click("#welcome")
        await wait_until(pilot, lambda: isinstance(app.screen, IdentifyScreen), "identify")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, AttractScreen), "attract")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, IdentifyScreen), "identify")


async def test_phone_and_code_sign_in_then_idle_reset_clears_everything(
    hub: EmbeddedHub, kiosk_key: str, phone: str, campaign: str
) -> None:
    """Number + texted code -> points, coupon (large code, expiry), offer; idle -> all gone."""
    now = [0.0]
    app = make_app(hub.url, kiosk_key, idle_timeout_s=30.0, monotonic=lambda: now[0])
    own = sign_in_phone(hub, phone, "own-phone")
    customer_id = own.get("/v1/me").json()["id"]
    own.close()
    with hub.client() as admin:
        body = {"points": 40, "reason": "welcome", "client_key": f"adj-{customer_id}"}
        assert admin.post(f"/v1/customers/{customer_id}/points/adjust", json=body).is_success
    _coupon_for(hub, customer_id, POOL_CODE)

    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, IdentifyScreen), "identify")
        await pilot.press(*phone, "enter")
        await wait_until(pilot, lambda: app.focused is app.screen.query_one("#code"), "code sent")
        code = read_sms_code(hub, phone)
        await pilot.press(*code, "enter")
        await wait_until(pilot, lambda: app.customer is not None and app.customer.loaded, "home")
        assert isinstance(app.screen, HomeScreen)
        shown = screen_text(app)
        assert f"{40 + SIGNIN_BONUS} points" in shown
        assert app.screen.query_one("#points-digits", Digits).value == str(40 + SIGNIN_BONUS)
        assert spaced(POOL_CODE) in shown and "valid until 2026-12-14" in shown
        assert "Welcome back" in shown and f"+{SIGNIN_BONUS} points" in shown
        token = app.customer.session.token  # type: ignore[union-attr]

        now[0] += 29.0
        await pilot.press("down")  # a touch 29 s in keeps the customer's screen alive
        now[0] += 29.0
        await pilot.pause(0.6)
        assert isinstance(app.screen, HomeScreen)
        now[0] += 31.0
        await wait_until(pilot, lambda: isinstance(app.screen, AttractScreen), "idle reset")
        await app.workers.wait_for_complete()

        assert app.customer is None
        held = repr(vars(app))
        for secret in (token, customer_id, phone, code, POOL_CODE):
            assert secret not in held
        shown = screen_text(app)
        for datum in (phone, code, spaced(POOL_CODE), "45", "Welcome back"):
            assert datum not in shown
        assert len(app.screen_stack) == 2
    # The kiosk revoked the session it held: the token opens nothing any more.
    with httpx.Client(base_url=hub.url) as anon:
        me = anon.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401


async def test_phone_token_heard_by_the_node_signs_in_without_typing(
    hub: EmbeddedHub, kiosk_key: str, phone: str, campaign: str
) -> None:
    """The customer's phone plays its token; the counter node hears it; the kiosk goes home."""
    app = make_app(hub.url, kiosk_key)
    own = sign_in_phone(hub, phone, "own-phone")
    customer_id = own.get("/v1/me").json()["id"]
    token = own.post("/v1/phone/tokens").json()["token"]
    own.close()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, IdentifyScreen), "identify")
        screen = app.screen
        assert isinstance(screen, IdentifyScreen)
        await wait_until(pilot, lambda: screen._baseline is not None, "the first presence poll")
        hear_token(hub, token)
        await wait_until(pilot, lambda: app.customer is not None and app.customer.loaded, "home")
        assert app.customer is not None and app.customer.customer_id == customer_id
        assert app.customer.session is None
        shown = screen_text(app)
        assert shown.count("Welcome back") == 1
        # Token presence alone shows points and coupons too (the phone was just heard here).
        assert f"{SIGNIN_BONUS} points" in shown and "No coupons yet." in shown
        await pilot.click("#services")
        await wait_until(pilot, lambda: "Video data pack 20 GB" in screen_text(app), "catalogue")
        shown = screen_text(app)
        assert "3 yuan a month · 30-day free trial" in shown and "needs a 4G phone" in shown
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen), "back home")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, AttractScreen), "sign-out")
        assert app.customer is None


async def test_wrong_code_and_bad_number_say_so_plainly(
    hub: EmbeddedHub, kiosk_key: str, phone: str
) -> None:
    """A malformed number and a wrong code each get one plain sentence; nothing signs in."""
    app = make_app(hub.url, kiosk_key)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, IdentifyScreen), "identify")
        await pilot.press(*"12", "enter")
        await wait_until(pilot, lambda: "does not look like a phone" in screen_text(app), "bad")
        app.screen.query_one("#phone", Input).value = phone
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.focused is app.screen.query_one("#code"), "code sent")
        right = read_sms_code(hub, phone)
        wrong = f"{(int(right) + 1) % 1_000_000:06d}"
        await pilot.press(*wrong, "enter")
        await wait_until(pilot, lambda: "wrong or has expired" in screen_text(app), "refusal")
        assert app.customer is None and isinstance(app.screen, IdentifyScreen)


async def test_language_toggle_switches_every_screen(hub: EmbeddedHub, kiosk_key: str) -> None:
    """F2 (or the language button) switches to Simplified Chinese and back, on each screen."""
    app = make_app(hub.url, kiosk_key)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "Gulou flagship" in screen_text(app), "the store name")
        await pilot.click("#language")
        await wait_until(pilot, lambda: "点击开始" in screen_text(app), "Chinese attract")
        await pilot.click("#start")
        await wait_until(pilot, lambda: isinstance(app.screen, IdentifyScreen), "identify")
        assert "发送验证码" in screen_text(app)
        await pilot.press("f2")
        await wait_until(pilot, lambda: "Send me a code" in screen_text(app), "English again")


def test_kiosk_key_of_another_store_sees_no_presence(hub: EmbeddedHub) -> None:
    """The presence the kiosk polls is scoped: another store's kiosk key gets 404."""
    other = hub.api_key(Role.KIOSK, store_id="xm-siming")
    with hub.client(other) as client:
        assert client.get(f"/v1/stores/{STORE}/presence").status_code == 404
