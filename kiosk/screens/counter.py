"""Counter screens: take a queue ticket (with the wait), rate today's visit (1-5, comment)."""

from __future__ import annotations

from typing import Any, Final

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Button, Digits, Input, Static

from kiosk.client import HubError
from kiosk.screens.common import HubStatus, KioskScreen

STAR_CHOICES: Final = range(1, 6)  # issue 10: rate 1-5
# A comment is a sentence or two (the hub's limit).
MAX_COMMENT: Final = 500


class QueueScreen(KioskScreen):
    """Takes a ticket on open; shows the number in large digits and the estimated wait."""

    DEFAULT_CSS = """
    QueueScreen { align: center middle; }
    QueueScreen #queue-box { width: 60; height: auto; align: center middle; }
    QueueScreen #queue-title { text-style: bold; content-align: center middle; width: 100%; }
    QueueScreen #ticket-number { color: $success; width: auto; }
    QueueScreen #ahead { content-align: center middle; width: 100%; padding: 1 0; }
    QueueScreen #queue-back { width: 100%; height: 3; }
    """
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self) -> None:
        """No ticket yet."""
        super().__init__()
        self.ticket: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        """Title, number, wait, back."""
        with Vertical(id="queue-box"):
            yield Static(id="queue-title")
            yield Digits(id="ticket-number")
            yield Static(id="ahead")
            yield Button(id="queue-back", variant="primary")
        yield HubStatus()

    def on_mount(self) -> None:
        """Texts; ask the hub for a ticket."""
        self.refresh_texts()
        self.query_one("#queue-back", Button).focus()
        self.take()

    @work(exclusive=True, group="counter")
    async def take(self) -> None:
        """One ticket for this customer (a retry after an outage asks again)."""
        customer = self.kiosk.customer
        try:
            self.ticket = await self.kiosk.client.take_ticket(
                customer.customer_id if customer else None
            )
        except HubError as exc:
            self.kiosk.report(exc)
            return
        self.kiosk.report(None)
        self.refresh_texts()

    def on_hub_back(self) -> None:
        """Ask again if the ticket never came."""
        if self.ticket is None:
            self.take()

    def refresh_texts(self) -> None:
        """Number and wait in the current language."""
        self.query_one("#queue-title", Static).update(self.t("your_number"))
        self.query_one("#queue-back", Button).label = self.t("back")
        if self.ticket is None:
            self.query_one("#ahead", Static).update(self.t("loading"))
            return
        self.query_one("#ticket-number", Digits).update(str(self.ticket["number"]))
        lines = [self.t("ahead", ahead=self.ticket["ahead"],
                        minutes=self.ticket["estimated_wait_min"])]
        if self.ticket.get("now_serving") is not None:
            lines.append(self.t("now_serving", number=self.ticket["now_serving"]))
        self.query_one("#ahead", Static).update("\n".join(lines))

    @on(Button.Pressed, "#queue-back")
    def action_back(self) -> None:
        """Back to the customer's home."""
        self.dismiss()


class RatingScreen(KioskScreen):
    """Five star buttons (or keys 1-5), an optional comment, send."""

    DEFAULT_CSS = """
    RatingScreen #rating-box { padding: 1 2; height: auto; }
    RatingScreen #rating-title { text-style: bold; color: $accent; padding: 0 0 1 0; }
    RatingScreen #stars { height: auto; }
    RatingScreen #stars Button { min-width: 12; height: 3; margin: 0 1 0 0; }
    RatingScreen #stars Button.-chosen { background: $success; }
    RatingScreen #comment { height: 3; margin: 1 0; }
    RatingScreen #rating-buttons { height: auto; }
    RatingScreen #rating-buttons Button { width: 1fr; height: 3; margin: 0 1 0 0; }
    RatingScreen #rating-message { text-style: bold; padding: 1 0; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back"),
        *[Binding(str(n), f"stars({n})", f"{n} stars", show=False) for n in STAR_CHOICES],
    ]

    stars: reactive[int] = reactive(0)

    def __init__(self) -> None:
        """Nothing chosen, nothing sent."""
        super().__init__()
        self.sent = False

    def compose(self) -> ComposeResult:
        """Question, stars, comment, send/back, message."""
        with Vertical(id="rating-box"):
            yield Static(id="rating-title")
            with Horizontal(id="stars"):
                for n in STAR_CHOICES:
                    yield Button("★" * n, id=f"star-{n}")
            yield Input(id="comment", max_length=MAX_COMMENT)
            with Horizontal(id="rating-buttons"):
                yield Button(id="send", variant="success")
                yield Button(id="rating-back")
            yield Static(id="rating-message")
        yield HubStatus()

    def on_mount(self) -> None:
        """Texts; focus the first star."""
        self.refresh_texts()
        self.query_one("#star-1", Button).focus()

    def refresh_texts(self) -> None:
        """Every label in the current language."""
        self.query_one("#rating-title", Static).update(self.t("rate_title"))
        self.query_one("#comment", Input).placeholder = self.t("comment_placeholder")
        self.query_one("#send", Button).label = self.t("send")
        self.query_one("#rating-back", Button).label = self.t("back")
        if self.sent:
            self.query_one("#rating-message", Static).update(self.t("thanks"))

    def watch_stars(self, stars: int) -> None:
        """Highlight the chosen number of stars."""
        for n in STAR_CHOICES:
            self.query_one(f"#star-{n}", Button).set_class(n == stars, "-chosen")

    def action_stars(self, stars: int) -> None:
        """Choose 1-5 stars (keys 1-5 unless typing a comment)."""
        if not isinstance(self.focused, Input):
            self.stars = stars

    @on(Button.Pressed, "#stars Button")
    def _star_pressed(self, event: Button.Pressed) -> None:
        """Choose the stars of the pressed button."""
        self.stars = int((event.button.id or "star-0").removeprefix("star-"))

    @on(Input.Submitted, "#comment")
    @on(Button.Pressed, "#send")
    def _send_pressed(self) -> None:
        """Send, or ask for stars first."""
        if not self.stars:
            self.query_one("#rating-message", Static).update(self.t("pick_stars"))
            return
        self.send(self.stars, self.query_one("#comment", Input).value.strip())

    @work(exclusive=True, group="counter", description="send a rating")
    async def send(self, stars: int, comment: str) -> None:
        """Send the rating; thank the customer."""
        customer = self.kiosk.customer
        try:
            await self.kiosk.client.rate_visit(
                customer.customer_id if customer else None, stars, comment
            )
        except HubError as exc:
            self.query_one("#rating-message", Static).update(self.t(exc.message_key))
            self.kiosk.report(exc)
            return
        self.kiosk.report(None)
        self.sent = True
        self.refresh_texts()

    @on(Button.Pressed, "#rating-back")
    def action_back(self) -> None:
        """Back to the customer's home."""
        self.dismiss()
