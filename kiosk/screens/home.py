"""The customer's home: points balance, my coupons (code in large type), offers for me now."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.widgets import Button, Digits, Static

from kiosk.screens.common import HubStatus, KioskScreen

# Coupons the customer can still use; redeemed/voided/expired ones only clutter a kiosk.
USABLE_COUPON_STATE = "issued"


def spaced(code: str) -> str:
    """A coupon code letter-spaced so a cashier reads it from a metre away."""
    return " ".join(code)


class CouponCard(Static):
    """One coupon: the code in large, spaced, bold type and its expiry."""

    DEFAULT_CSS = """
    CouponCard {
        border: heavy $accent; padding: 1 2; margin: 0 0 1 0; height: auto; width: 100%;
    }
    """


class HomeScreen(KioskScreen):
    """What the identified customer sees; rebuilt from ``app.customer`` on every load."""

    DEFAULT_CSS = """
    HomeScreen #home-box { padding: 1 2; }
    HomeScreen #hello { text-style: bold; color: $accent; }
    HomeScreen .section { text-style: bold underline; padding: 1 0 0 0; }
    HomeScreen #points-value { text-style: bold; color: $success; padding: 0 0 0 2; }
    HomeScreen #points-digits { color: $success; padding: 0 0 0 2; width: auto; display: none; }
    HomeScreen #points-digits.-shown { display: block; }
    HomeScreen .offer { padding: 0 0 0 2; }
    HomeScreen #home-buttons { height: auto; dock: bottom; padding: 0 2 1 2; }
    HomeScreen #home-buttons Button { width: 1fr; min-width: 8; height: 3; margin: 0 0 0 1; }
    """
    BINDINGS = [Binding("escape", "done", "Sign out")]

    def compose(self) -> ComposeResult:
        """Sections for points, coupons and offers; the sign-out and language buttons."""
        with VerticalScroll(id="home-box"):
            yield Static(id="hello")
            yield Static(id="points-title", classes="section")
            yield Digits(id="points-digits")
            yield Static(id="points-value")
            yield Static(id="coupons-title", classes="section")
            yield Vertical(id="coupons")
            yield Static(id="offers-title", classes="section")
            yield Vertical(id="offers")
            yield Static(id="recommended-title", classes="section")
            yield Vertical(id="recommended")
        with Horizontal(id="home-buttons"):
            yield Button(id="done", variant="primary")
            yield Button(id="services")
            yield Button(id="queue")
            yield Button(id="pickup")
            yield Button(id="rate")
            yield Button(id="language")
        yield HubStatus()

    def on_mount(self) -> None:
        """Show what is loaded (or 'loading'); focus sign-out."""
        self.refresh_texts()
        self.query_one("#done", Button).focus()

    def refresh_texts(self) -> None:
        """Rebuild every text from the app's customer state in the current language."""
        customer = self.kiosk.customer
        self.query_one("#hello", Static).update(self.t("hello"))
        self.query_one("#points-title", Static).update(self.t("points"))
        self.query_one("#coupons-title", Static).update(self.t("coupons"))
        self.query_one("#offers-title", Static).update(self.t("offers"))
        self.query_one("#done", Button).label = self.t("done")
        self.query_one("#language", Button).label = self.t("language")
        self.query_one("#services", Button).label = self.t("services")
        self.query_one("#queue", Button).label = self.t("queue")
        self.query_one("#pickup", Button).label = self.t("pickup")
        self.query_one("#rate", Button).label = self.t("rate")
        recommended = self.query_one("#recommended", Vertical)
        coupons = self.query_one("#coupons", Vertical)
        offers = self.query_one("#offers", Vertical)
        for box in (coupons, offers, recommended):
            box.remove_children()
        shown = bool(customer and customer.loaded and customer.recommended)
        self.query_one("#recommended-title", Static).update(
            self.t("recommended") if shown else ""
        )
        digits = self.query_one("#points-digits", Digits)
        has_wallet = bool(customer and customer.loaded and customer.points is not None)
        digits.set_class(has_wallet, "-shown")
        if customer is None or not customer.loaded:
            self.query_one("#points-value", Static).update(self.t("loading"))
            digits.update("")
            return
        if customer.points is not None:
            digits.update(str(customer.points))
            self.query_one("#points-value", Static).update(
                self.t("points_value", points=customer.points)
            )
            usable = [c for c in customer.coupons if c.get("state") == USABLE_COUPON_STATE]
            coupons.mount_all(
                [CouponCard(self._coupon_text(c)) for c in usable]
                or [Static(self.t("no_coupons"), classes="offer")]
            )
        else:
            self.query_one("#points-value", Static).update(self.t("points_hold_again"))
        offers.mount_all(
            [Static(self._offer_text(o), classes="offer") for o in customer.offers]
            or [Static(self.t("no_offers"), classes="offer")]
        )
        recommended.mount_all(
            [Static(escape(f"• {r['name']} - {r['reason']}"), classes="offer")
             for r in customer.recommended]
        )

    def _coupon_text(self, coupon: dict[str, Any]) -> str:
        """Code in large type, then its expiry."""
        expires = coupon.get("expires_at")
        when = (
            self.t("valid_until", date=self.local_date(expires))
            if expires else self.t("no_expiry")
        )
        return f"[b]{escape(spaced(coupon['code']))}[/b]\n{when}"

    def _offer_text(self, offer: dict[str, Any]) -> str:
        """An offer's title and what it gave."""
        parts = [f"• {escape(offer.get('title') or '')}".rstrip()]
        if offer.get("points"):
            parts.append(self.t("offer_points", points=offer["points"]))
        if offer.get("coupon_code"):
            parts.append(self.t("offer_code", code=escape(offer["coupon_code"])))
        return "  ".join(parts)

    def on_hub_back(self) -> None:
        """Reload the customer's data if it did not load while the hub was away."""
        customer = self.kiosk.customer
        if customer is not None and not customer.loaded:
            self.kiosk.load_customer()

    @on(Button.Pressed, "#done")
    def action_done(self) -> None:
        """Sign out: forget everything about this customer."""
        self.kiosk.reset()

    @on(Button.Pressed, "#services")
    def _services_pressed(self) -> None:
        """Open the services catalogue."""
        self.kiosk.show_services()

    @on(Button.Pressed, "#queue")
    def _queue_pressed(self) -> None:
        """Take a queue ticket."""
        self.kiosk.show_queue()

    @on(Button.Pressed, "#pickup")
    def _pickup_pressed(self) -> None:
        """Pick up an online order."""
        self.kiosk.show_pickup()

    @on(Button.Pressed, "#rate")
    def _rate_pressed(self) -> None:
        """Rate the visit."""
        self.kiosk.show_rating()

    @on(Button.Pressed, "#language")
    def _language_pressed(self) -> None:
        """Switch the language."""
        self.kiosk.action_toggle_language()
