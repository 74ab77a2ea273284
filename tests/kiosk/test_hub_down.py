"""The hub down or slow: plain words on screen, still usable, background retry, recovery."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from textual.widgets import Input

from hub.embedded import EmbeddedHub, free_port
from kiosk.screens.identify import IdentifyScreen
from tests.kiosk.conftest import STORE, make_app
from tests.kiosk.helpers import screen_text, wait_until

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
