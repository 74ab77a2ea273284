"""Pick up an online order: type its number, the kiosk checks you in and staff bring it over."""

from __future__ import annotations

from typing import Any, Final

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.widgets import Button, Input, Static

from kiosk.client import HubError
from kiosk.i18n import has
from kiosk.screens.common import HubStatus, KioskScreen

# Order numbers come from the online channels' systems (the hub's limit).
MAX_ORDER_CODE: Final = 128


class PickupScreen(KioskScreen):
    """An order-number field, find, and one plain sentence with what happens next."""

    DEFAULT_CSS = """
    PickupScreen #pickup-box { padding: 1 2; height: auto; }
    PickupScreen #pickup-title { text-style: bold; color: $accent; padding: 0 0 1 0; }
    PickupScreen #order-code { height: 3; margin: 1 0; }
    PickupScreen #pickup-buttons { height: auto; }
    PickupScreen #pickup-buttons Button { width: 1fr; height: 3; margin: 0 1 0 0; }
    PickupScreen #pickup-message { text-style: bold; padding: 1 0; }
    """
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self) -> None:
        """Nothing asked yet."""
        super().__init__()
        self.result: dict[str, Any] | None = None
        self.message_key = ""

    def compose(self) -> ComposeResult:
        """Title, hint, the order number, find/back, the answer."""
        with Vertical(id="pickup-box"):
            yield Static(id="pickup-title")
            yield Static(id="pickup-hint")
            yield Input(id="order-code", max_length=MAX_ORDER_CODE)
            with Horizontal(id="pickup-buttons"):
                yield Button(id="find", variant="success")
                yield Button(id="pickup-back")
            yield Static(id="pickup-message")
        yield HubStatus()

    def on_mount(self) -> None:
        """Texts; the cursor in the order field."""
        self.refresh_texts()
        self.query_one("#order-code", Input).focus()

    def refresh_texts(self) -> None:
        """Every text in the current language."""
        self.query_one("#pickup-title", Static).update(self.t("pickup_title"))
        self.query_one("#pickup-hint", Static).update(self.t("pickup_hint"))
        self.query_one("#order-code", Input).placeholder = self.t("order_placeholder")
        self.query_one("#find", Button).label = self.t("find_order")
        self.query_one("#pickup-back", Button).label = self.t("back")
        self.query_one("#pickup-message", Static).update(self._message())

    def _message(self) -> str:
        """What the customer should do now, in the current language."""
        if self.result is not None:
            code = escape(str(self.result["order_code"]))
            if self.result["already_checked_in"]:
                return self.t("order_ready_again", code=code)
            key = f"product_{self.result['product']}"
            product = self.t(key) if has(key) else escape(str(self.result["product"]))
            return self.t("order_ready", product=product, code=code)
        return self.t(self.message_key) if self.message_key else ""

    @on(Input.Submitted, "#order-code")
    @on(Button.Pressed, "#find")
    def _find_pressed(self) -> None:
        """Look the order up, or ask for its number first."""
        code = self.query_one("#order-code", Input).value.strip()
        self.result = None
        self.message_key = "" if code else "order_empty"
        self.refresh_texts()
        if code:
            self.find(code)

    @work(exclusive=True, group="pickup", description="check in for an order")
    async def find(self, code: str) -> None:
        """Check the customer in for the order; say what happens next."""
        customer = self.kiosk.customer
        if customer is None:
            return
        try:
            self.result = await self.kiosk.client.pick_up(
                customer.customer_id, customer.session, code
            )
        except HubError as exc:
            self.message_key = exc.message_key
            self.kiosk.report(exc)
        else:
            self.kiosk.report(None)
        self.refresh_texts()

    @on(Button.Pressed, "#pickup-back")
    def action_back(self) -> None:
        """Back to the customer's home."""
        self.dismiss()
