"""The hub down or slow: plain words on screen, still usable, background retry, recovery."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Input

from hub.clock import ManualClock
from hub.embedded import EmbeddedHub, free_port, start_embedded_hub
from hub.models.auth import Role
from kiosk.screens.attract import AttractScreen
from kiosk.screens.home import HomeScreen
from kiosk.screens.identify import IdentifyScreen
from storewave.demo_world import sign_in_phone
from tests.kiosk.conftest import FIXED_START, STORE, make_app
from tests.kiosk.helpers import hear_token, screen_text, wait_until

SIZE = (100, 40)
DOWN = "We cannot reach the store system right now"
SLOW = "The store system is slow to answer"
# Short enough that a test sees the slow path quickly, long enough for a loopback reply.
SHORT_TIMEOUT_S = 0.5
# Retry often so recovery shows within a few Pilot pauses.
FAST_RETRY_S = 0.1


@pytest.fixture
def silent_hub() -> Iterator[str]:
    """A URL whose server accepts connections and never answers (a hung hub)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


async def test_hub_unreachable_says_so_and_stays_usable(kiosk_key: str) -> None:
    """Nothing listens: the kiosk says so, shows the store id, still navigates and types."""
    app = make_app(f"http://127.0.0.1:{free_port()}", kiosk_key, retry_s=FAST_RETRY_S)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: DOWN in screen_text(app), "the outage sentence")
        assert STORE in screen_text(app)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, IdentifyScreen), "identify")
        await pilot.press(*"13800138000", "enter")
        await wait_until(pilot, lambda: DOWN in screen_text(app), "the outage on identify")
        assert app.screen.query_one("#phone", Input).value == "13800138000"
        await pilot.press("f2")
        await wait_until(pilot, lambda: "暂时无法连接门店系统" in screen_text(app), "in Chinese")
        assert "Traceback" not in screen_text(app)
        assert app.return_code is None  # still running: no crash


async def test_hub_hung_reports_slow(silent_hub: str, kiosk_key: str) -> None:
    """A hub that accepts but never answers: 'slow', not a frozen screen."""
    app = make_app(silent_hub, kiosk_key, timeout_s=SHORT_TIMEOUT_S, retry_s=FAST_RETRY_S)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: SLOW in screen_text(app), "the slow sentence")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, IdentifyScreen), "identify")


async def test_background_retry_recovers_when_the_hub_returns(
    hub: EmbeddedHub, kiosk_key: str
) -> None:
    """Retry in the background; once the hub answers, the sentence goes and data loads."""
    app = make_app(f"http://127.0.0.1:{free_port()}", kiosk_key, retry_s=FAST_RETRY_S)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: DOWN in screen_text(app), "the outage sentence")
        # The network comes back: the kiosk's next retry reaches the real hub.
        app.client._http.base_url = hub.url  # type: ignore[assignment]
        await wait_until(pilot, lambda: "Gulou flagship" in screen_text(app), "the store name")
        assert DOWN not in screen_text(app) and app.problem_key == ""


async def test_hub_stopped_mid_session_keeps_the_screen(tmp_path: Path) -> None:
    """A customer is signed in when the hub stops: their home stays, the outage is said."""
    own_hub = start_embedded_hub(tmp_path / "hub", clock=ManualClock(FIXED_START))
    try:
        key = own_hub.api_key(Role.KIOSK, store_id=STORE)
        own = sign_in_phone(own_hub, "+8613800138000", "own-phone")
        token = own.post("/v1/phone/tokens").json()["token"]
        own.close()
        app = make_app(own_hub.url, key, retry_s=FAST_RETRY_S)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, IdentifyScreen), "identify")
            screen = app.screen
            assert isinstance(screen, IdentifyScreen)
            await wait_until(pilot, lambda: screen._baseline is not None, "first presence poll")
            hear_token(own_hub, token)
            await wait_until(pilot, lambda: bool(app.customer and app.customer.loaded), "home")
            assert isinstance(app.screen, HomeScreen)
            # Stop on a thread: the kiosk's loop (this test's) keeps running meanwhile.
            await asyncio.to_thread(own_hub.stop)
            await pilot.click("#services")
            await wait_until(pilot, lambda: DOWN in screen_text(app), "the outage sentence")
            await pilot.press("escape", "escape")
            await wait_until(pilot, lambda: isinstance(app.screen, AttractScreen), "attract")
            assert app.customer is None and app.return_code is None
    finally:
        own_hub.stop()
