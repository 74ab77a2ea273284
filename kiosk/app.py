"""The kiosk app: screens, idle reset, hub status with background retry, language toggle."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from textual import events, work
from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive

from kiosk import DEFAULT_IDLE_TIMEOUT_S
from kiosk.client import HubError, HubRefused, HubUnavailable, KioskClient, PhoneSession
from kiosk.i18n import DEFAULT_LANGUAGE, LANGUAGES, other_language
from kiosk.screens.attract import AttractScreen
from kiosk.screens.common import KioskScreen
from kiosk.screens.counter import QueueScreen, RatingScreen
from kiosk.screens.home import HomeScreen
from kiosk.screens.identify import IdentifyScreen
from kiosk.screens.pickup import PickupScreen
from kiosk.screens.services import ServicesScreen
from kiosk.state import CustomerState

log = logging.getLogger(__name__)

# Checking idleness twice a second makes the reset land within half a second of the limit.
IDLE_CHECK_S: Final = 0.5
# A phone plays its token for a couple of seconds; polling each second catches it at once.
DEFAULT_PRESENCE_POLL_S: Final = 1.0
# Retrying the hub every few seconds notices its return fast without flooding the LAN.
DEFAULT_RETRY_S: Final = 3.0
# Input a customer gives counts as activity; the clock ticking does not.
_ACTIVITY = (events.Key, events.MouseDown, events.MouseScrollDown, events.MouseScrollUp)


class KioskApp(App[None]):
    """The self-service kiosk of one store, talking to the hub through ``client``."""

    TITLE = "StoreWave"
    CSS = """
    Screen { background: $surface; }
    Button { text-style: bold; }
    """
    BINDINGS = [
        Binding("f2", "toggle_language", "Language / 语言"),
        Binding("f12", "reset", "Reset", show=False),
    ]

    language: reactive[str] = reactive(DEFAULT_LANGUAGE)
    problem_key: reactive[str] = reactive("")

    def __init__(
        self,
        client: KioskClient,
        *,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        presence_poll_s: float = DEFAULT_PRESENCE_POLL_S,
        retry_s: float = DEFAULT_RETRY_S,
        monotonic: Callable[[], float] = time.monotonic,
        default_language: str = DEFAULT_LANGUAGE,
    ) -> None:
        """Configure; nothing talks to the hub until the app runs."""
        super().__init__()
        if default_language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
        self.default_language = default_language
        self.set_reactive(KioskApp.language, default_language)
        self.client = client
        self.idle_timeout_s = idle_timeout_s
        self.presence_poll_s = presence_poll_s
        self.retry_s = retry_s
        self._monotonic = monotonic
        self.last_activity = monotonic()
        self.store_name = client.store_id
        # Dates are shown in the store's time zone once its profile has loaded.
        self.store_zone: ZoneInfo | None = None
        self.customer: CustomerState | None = None

    def on_mount(self) -> None:
        """Attract screen, store name, idle watch."""
        self.push_screen(AttractScreen())
        self.set_interval(IDLE_CHECK_S, self.check_idle_reset)
        self.load_store()

    async def on_unmount(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

    async def on_event(self, event: events.Event) -> None:
        """Every touch or key press keeps the customer's screen alive."""
        if isinstance(event, _ACTIVITY):
            self.last_activity = self._monotonic()
        await super().on_event(event)

    # ------------------------------------------------------------- hub status

    def report(self, problem: HubError | None) -> None:
        """Show a hub outage and retry in the background, or clear it."""
        if problem is None:
            self.problem_key = ""
        elif isinstance(problem, HubUnavailable):
            self.problem_key = problem.message_key
            self.retry_hub()

    @work(exclusive=True, group="retry")
    async def retry_hub(self) -> None:
        """Poll the hub's health until it answers; then let the screen reload."""
        while True:
            await asyncio.sleep(self.retry_s)
            try:
                await self.client.health()
            except HubUnavailable as exc:
                self.problem_key = exc.message_key
                continue
            self.problem_key = ""
            screen = self.screen
            if isinstance(screen, KioskScreen):
                screen.on_hub_back()
            return

    @work(exclusive=True, group="store")
    async def load_store(self) -> None:
        """Fetch the store's name for the attract screen."""
        try:
            store = await self.client.store()
        except HubError as exc:
            self.report(exc)
            return
        self.store_name = str(store.get("name") or self.client.store_id)
        try:
            self.store_zone = ZoneInfo(str(store.get("timezone") or "UTC"))
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("the store's time zone is unknown here; dates are shown in UTC")
        self._refresh_all_texts()

    # ------------------------------------------------------------- flow

    def start_identify(self) -> None:
        """From the attract screen to identification."""
        self.last_activity = self._monotonic()
        if not isinstance(self.screen, IdentifyScreen):
            self.push_screen(IdentifyScreen())

    def customer_identified(self, customer_id: str, session: PhoneSession | None) -> None:
        """Hold the customer in memory, show their home and load their data (once)."""
        self.last_activity = self._monotonic()
        if self.customer is not None:
            # A second presence poll can land before the identify screen is gone; the
            # customer is already here (a second sign-in would grant sign-in offers twice).
            return
        self.customer = CustomerState(customer_id, self.client.new_request_id(), session)
        self.switch_screen(HomeScreen())
        self.load_customer()

    @work(exclusive=True, group="customer")
    async def load_customer(self) -> None:
        """Sign-in grants, offers, recommendations, points and coupons."""
        customer = self.customer
        if customer is None:
            return
        try:
            await self.client.kiosk_signin(customer.customer_id, customer.request_id)
            offers = await self.client.offers(customer.customer_id)
            pushes = await self.client.cross_sell(customer.customer_id)
            points, coupons = None, []
            try:
                wallet = await self.client.wallet(customer.customer_id, customer.session)
                points, coupons = int(wallet["points"]), list(wallet["coupons"])
            except HubRefused:
                # Signed in by token presence but the phone was last heard too long ago:
                # the home screen asks them to hold it near again.
                log.info("wallet refused for the customer at the kiosk")
        except HubError as exc:
            self.report(exc)
            return
        if self.customer is not customer:  # reset (or someone else) while we loaded
            return
        self.report(None)
        customer.offers, customer.points, customer.coupons = offers, points, coupons
        main = [pushes["main_push"]] if pushes.get("main_push") else []
        customer.recommended = main + list(pushes.get("secondary_push") or [])
        customer.loaded = True
        self._refresh_all_texts()

    def show_services(self) -> None:
        """Open the services catalogue."""
        self.last_activity = self._monotonic()
        self.push_screen(ServicesScreen())

    def show_queue(self) -> None:
        """Take a queue ticket for the counter."""
        self.last_activity = self._monotonic()
        self.push_screen(QueueScreen())

    def show_rating(self) -> None:
        """Rate today's visit."""
        self.last_activity = self._monotonic()
        self.push_screen(RatingScreen())

    def show_pickup(self) -> None:
        """Pick up an online order by its code."""
        self.last_activity = self._monotonic()
        self.push_screen(PickupScreen())

    def check_idle_reset(self) -> None:
        """Back to the attract screen after ``idle_timeout_s`` without a touch."""
        idle_s = self._monotonic() - self.last_activity
        if idle_s >= self.idle_timeout_s and not isinstance(self.screen, AttractScreen):
            log.info("idle for %.0f s: back to the attract screen", idle_s)
            self.reset()

    def action_reset(self) -> None:
        """Staff key: forget the customer now."""
        self.reset()

    def reset(self) -> None:
        """Forget the customer (memory and screen), revoke their session, show attract."""
        customer, self.customer = self.customer, None
        self.workers.cancel_group(self, "customer")
        self.last_activity = self._monotonic()
        for group in ("services", "counter", "trial", "pickup"):
            self.workers.cancel_group(self, group)
        while len(self.screen_stack) > 2:  # [default, attract, ...]
            self.pop_screen()
        self.language = self.default_language  # the next customer starts in the default
        if customer is not None and customer.session is not None:
            self.revoke(customer.session)

    @work(group="revoke", description="revoke the customer's session")
    async def revoke(self, session: PhoneSession) -> None:
        """End the customer's phone session at the hub (best effort: it expires anyway)."""
        try:
            await self.client.close_session(session)
        except HubError:
            log.info("could not revoke a kiosk phone session; it will expire")

    # ------------------------------------------------------------- language

    def action_toggle_language(self) -> None:
        """Switch between English and Simplified Chinese."""
        self.language = other_language(self.language)

    def watch_language(self) -> None:
        """Re-render every screen in the new language."""
        self._refresh_all_texts()

    def _refresh_all_texts(self) -> None:
        """Ask every kiosk screen on the stack to re-render its texts."""
        for screen in self.screen_stack:
            if isinstance(screen, KioskScreen) and screen.is_mounted:
                screen.refresh_texts()
