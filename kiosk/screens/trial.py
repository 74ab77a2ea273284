"""Start a free trial of a service (what your phone has, consent to texts) or keep a trial."""

from __future__ import annotations

from typing import Any, Final

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.widgets import Button, Checkbox, Static

from kiosk.client import HubError
from kiosk.screens.common import HubStatus, KioskScreen

# Prices come in fen (1/100 yuan).
FEN_PER_YUAN: Final = 100
# What phones commonly have that services ask for; a service may name more (added to these).
CAPABILITIES: Final = ("4g", "5g", "volte")
# How a capability reads on the screen.
_CAPABILITY_LABELS: Final = {"4g": "4G", "5g": "5G", "volte": "VoLTE"}


def yuan(price_fen: int) -> str:
    """A price in fen as yuan, without trailing zeros."""
    return f"{price_fen / FEN_PER_YUAN:g}"


class TrialScreen(KioskScreen):
    """One service: try it free (``trial_id`` None) or keep the trial it names."""

    DEFAULT_CSS = """
    TrialScreen #trial-box { padding: 1 2; height: auto; }
    TrialScreen #trial-title { text-style: bold; color: $accent; }
    TrialScreen #trial-terms { padding: 1 0; }
    TrialScreen #handset { height: auto; }
    TrialScreen #handset Checkbox { margin: 0 1 0 0; }
    TrialScreen #consent { margin: 1 0 0 0; }
    TrialScreen #trial-buttons { height: auto; margin: 1 0 0 0; }
    TrialScreen #trial-buttons Button { width: 1fr; height: 3; margin: 0 1 0 0; }
    TrialScreen #trial-message { text-style: bold; padding: 1 0; }
    """
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, service: dict[str, Any], trial_id: str | None = None) -> None:
        """The catalogue entry; the trial to keep, if that is what the customer chose."""
        super().__init__()
        self.service = service
        self.trial_id = trial_id
        self.capabilities = list(CAPABILITIES) + sorted(
            set(service.get("requires") or []) - set(CAPABILITIES)
        )
        self.done: dict[str, Any] | None = None
        self.message_key = ""

    @property
    def keeping(self) -> bool:
        """True when the customer keeps a trial rather than starting one."""
        return self.trial_id is not None

    def compose(self) -> ComposeResult:
        """Title and terms; for a new trial the handset boxes and consent; go/back; message."""
        with Vertical(id="trial-box"):
            yield Static(id="trial-title")
            yield Static(id="trial-terms")
            if not self.keeping:
                yield Static(id="phone-has")
                with Horizontal(id="handset"):
                    for cap in self.capabilities:
                        yield Checkbox(_CAPABILITY_LABELS.get(cap, cap.upper()), id=f"cap-{cap}")
                yield Checkbox(id="consent")
            with Horizontal(id="trial-buttons"):
                yield Button(id="go", variant="success")
                yield Button(id="trial-back")
            yield Static(id="trial-message")
        yield HubStatus()

    def on_mount(self) -> None:
        """Texts; focus the first box (or the keep button)."""
        self.refresh_texts()
        first = "#go" if self.keeping else f"#cap-{self.capabilities[0]}"
        self.query_one(first).focus()

    def refresh_texts(self) -> None:
        """Every text in the current language."""
        name, price = escape(self.service["name"]), yuan(self.service["price_fen"])
        if self.keeping:
            self.query_one("#trial-title", Static).update(self.t("keep_title", name=name))
            self.query_one("#trial-terms", Static).update(self.t("keep_terms", price=price))
            self.query_one("#go", Button).label = self.t("keep_yes")
        else:
            self.query_one("#trial-title", Static).update(self.t("trial_title", name=name))
            self.query_one("#trial-terms", Static).update(
                self.t("trial_terms", days=self.service["trial_days"], price=price)
            )
            self.query_one("#phone-has", Static).update(self.t("phone_has"))
            self.query_one("#consent", Checkbox).label = self.t("consent_box")
            self.query_one("#go", Button).label = self.t("start_trial")
        self.query_one("#trial-back", Button).label = self.t("back")
        self.query_one("#go", Button).disabled = self.done is not None
        self.query_one("#trial-message", Static).update(self._message())

    def _message(self) -> str:
        """The outcome, or why it did not work, in the current language."""
        if self.done is not None:
            if self.keeping:
                return self.t("kept", name=escape(self.service["name"]))
            return self.t("trial_started", date=self.local_date(self.done.get("ends_at")))
        if not self.message_key:
            return ""
        needs = " + ".join(_CAPABILITY_LABELS.get(c, c.upper())
                           for c in self.service.get("requires") or [])
        return self.t(self.message_key, needs=needs)

    @on(Button.Pressed, "#go")
    def _go_pressed(self) -> None:
        """Start or keep, with what the customer ticked."""
        self.message_key = ""
        self.refresh_texts()
        if self.keeping:
            self.keep()
            return
        handset = [c for c in self.capabilities if self.query_one(f"#cap-{c}", Checkbox).value]
        self.start(handset, self.query_one("#consent", Checkbox).value)

    @work(exclusive=True, group="trial", description="start a free trial")
    async def start(self, handset: list[str], consent_sms: bool) -> None:
        """Ask the hub to start the trial; it checks the handset, history and consent."""
        customer = self.kiosk.customer
        if customer is None:
            return
        try:
            self.done = await self.kiosk.client.start_trial(
                customer.customer_id, customer.session, self.service["id"], handset, consent_sms
            )
        except HubError as exc:
            self._failed(exc)
            return
        self.kiosk.report(None)
        self.refresh_texts()

    @work(exclusive=True, group="trial", description="keep a trial service")
    async def keep(self) -> None:
        """Ask the hub to convert the trial to the paid service."""
        customer = self.kiosk.customer
        if customer is None or self.trial_id is None:
            return
        try:
            self.done = await self.kiosk.client.convert_trial(
                customer.customer_id, customer.session, self.trial_id
            )
        except HubError as exc:
            self._failed(exc)
            return
        self.kiosk.report(None)
        self.refresh_texts()

    def _failed(self, exc: HubError) -> None:
        """Say why in plain words; an outage also shows at the bottom and retries."""
        self.message_key = exc.message_key
        self.kiosk.report(exc)
        self.refresh_texts()

    @on(Button.Pressed, "#trial-back")
    def action_back(self) -> None:
        """Back to the catalogue."""
        self.dismiss()
