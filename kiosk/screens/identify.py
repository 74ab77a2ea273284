"""Identify the customer: their phone's token heard nearby, or phone number + texted code."""

from __future__ import annotations

from datetime import datetime

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Static

from kiosk.client import HubError, HubUnavailable
from kiosk.screens.common import HubStatus, KioskScreen

# Phone numbers are 7-15 digits with an optional + (the hub's rule); allow separators.
PHONE_CHARS = r"[0-9+ \-]*"
CODE_LENGTH = 6


class IdentifyScreen(KioskScreen):
    """Listens for the customer's phone through the store's node; or takes number + code."""

    DEFAULT_CSS = """
    IdentifyScreen { align: center top; }
    IdentifyScreen #identify-box { width: 90%; height: auto; padding: 1 2; }
    IdentifyScreen #identify-title { text-style: bold; color: $accent; padding: 0 0 1 0; }
    IdentifyScreen #listening { color: $success; padding: 0 0 1 0; }
    IdentifyScreen .row { height: auto; }
    IdentifyScreen Input { width: 1fr; height: 3; }
    IdentifyScreen Button { min-width: 24; height: 3; margin: 0 1; }
    IdentifyScreen #message { color: $error; padding: 1 0; text-style: bold; }
    IdentifyScreen #back { margin: 1 0 0 0; }
    """
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self) -> None:
        """Start without a presence baseline (the first poll takes it)."""
        super().__init__()
        self._baseline: dict[str, str] | None = None
        self._code_sent_to: str | None = None

    def compose(self) -> ComposeResult:
        """Presence hint, phone row, code row, message line, back button."""
        with Vertical(id="identify-box"):
            yield Static(id="identify-title")
            yield Static(id="hold-phone")
            yield Static(id="listening")
            yield Static(id="or-phone")
            with Horizontal(classes="row"):
                yield Input(id="phone", restrict=PHONE_CHARS, max_length=24)
                yield Button(id="send-code", variant="primary")
            with Horizontal(classes="row"):
                yield Input(id="code", restrict=r"[0-9]*", max_length=CODE_LENGTH)
                yield Button(id="sign-in", variant="success")
            yield Static(id="message")
            yield Button(id="back")
        yield HubStatus()

    def on_mount(self) -> None:
        """Texts, focus on the number, and start listening for a phone token."""
        self.refresh_texts()
        self.query_one("#phone", Input).focus()
        self.set_interval(self.kiosk.presence_poll_s, self.poll_presence)
        self.poll_presence()

    def refresh_texts(self) -> None:
        """Every label in the current language."""
        self.query_one("#identify-title", Static).update(self.t("identify_title"))
        self.query_one("#hold-phone", Static).update(self.t("hold_phone"))
        self.query_one("#listening", Static).update(self.t("listening"))
        self.query_one("#or-phone", Static).update(
            self.t("code_sent") if self._code_sent_to else self.t("or_phone")
        )
        self.query_one("#phone", Input).placeholder = self.t("phone_placeholder")
        self.query_one("#code", Input).placeholder = self.t("code_placeholder")
        self.query_one("#send-code", Button).label = self.t("send_code")
        self.query_one("#sign-in", Button).label = self.t("sign_in")
        self.query_one("#back", Button).label = self.t("back")

    def say(self, key: str | None) -> None:
        """Show one plain sentence under the form (or clear it)."""
        self.query_one("#message", Static).update(self.t(key) if key else "")

    @work(exclusive=True, group="presence")
    async def poll_presence(self) -> None:
        """Sign in the customer whose token a node of this store heard since we started."""
        try:
            present = await self.kiosk.client.presence()
        except HubError as exc:
            self.kiosk.report(exc)
            return
        self.kiosk.report(None)
        seen = {p["customer_id"]: str(p["seen_at"]) for p in present}
        if self._baseline is None:
            self._baseline = seen
            return
        fresh = [
            (datetime.fromisoformat(at), cid) for cid, at in seen.items()
            if self._baseline.get(cid) != at
        ]
        if fresh:
            _, customer_id = max(fresh)
            self.kiosk.customer_identified(customer_id, None)

    @on(Input.Submitted, "#phone")
    @on(Button.Pressed, "#send-code")
    def _send_code(self) -> None:
        """Enter in the number field, or the send button."""
        self.send_code(self.query_one("#phone", Input).value.strip())

    @work(exclusive=True, group="identify", description="send a code")
    async def send_code(self, phone: str) -> None:
        """Ask the hub to text a code to ``phone``; then move focus to the code field."""
        if not phone:
            self.say("bad_phone")
            return
        try:
            await self.kiosk.client.request_code(phone)
        except HubError as exc:
            self._fail(exc)
            return
        self.kiosk.report(None)
        self._code_sent_to = phone
        self.say(None)
        self.refresh_texts()
        self.query_one("#code", Input).focus()

    @on(Input.Submitted, "#code")
    @on(Button.Pressed, "#sign-in")
    def _sign_in(self) -> None:
        """Enter in the code field, or the sign-in button."""
        phone = self._code_sent_to or self.query_one("#phone", Input).value.strip()
        self.sign_in(phone, self.query_one("#code", Input).value.strip())

    @work(exclusive=True, group="identify", description="sign in")
    async def sign_in(self, phone: str, code: str) -> None:
        """Exchange the code for the customer's session and go home."""
        if len(code) != CODE_LENGTH or not phone:
            self.say("bad_code")
            return
        try:
            session = await self.kiosk.client.open_session(phone, code)
        except HubError as exc:
            self._fail(exc)
            return
        self.kiosk.report(None)
        self.kiosk.customer_identified(session.customer_id, session)

    def _fail(self, exc: HubError) -> None:
        """Say what went wrong; hub outages also go to the status line and retry."""
        self.say(exc.message_key)
        if isinstance(exc, HubUnavailable):
            self.kiosk.report(exc)

    @on(Button.Pressed, "#back")
    def action_back(self) -> None:
        """Back to the attract screen, forgetting what was typed."""
        self.kiosk.reset()
