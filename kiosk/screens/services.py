"""The services catalogue: read about each service, start a free trial, keep a trial service."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.markup import escape
from textual.widgets import Button, Static

from kiosk.client import HubError, HubRefused
from kiosk.screens.common import HubStatus, KioskScreen
from kiosk.screens.trial import TrialScreen, yuan


class ServiceAction(Button):
    """"Try free" or "keep it" under one service."""

    def __init__(self, label: str, service: dict[str, Any], action: str,
                 trial_id: str | None = None) -> None:
        """Remember the service and what pressing does; classes let tests find it."""
        super().__init__(label, variant="success" if action == "try" else "warning",
                         classes=f"action-{action} svc-{service['id']}")
        self.service = service
        self.kind = action
        self.trial_id = trial_id


class ServicesScreen(KioskScreen):
    """Every active service with its price and trial, and what the customer can do with it."""

    DEFAULT_CSS = """
    ServicesScreen #services-box { padding: 1 2; }
    ServicesScreen #services-title { text-style: bold; color: $accent; padding: 0 0 1 0; }
    ServicesScreen .service { border: round $accent; padding: 0 1; margin: 0 0 1 0; height: auto; }
    ServicesScreen .service ServiceAction { height: 3; min-width: 30; }
    ServicesScreen .standing { text-style: bold; color: $success; }
    ServicesScreen #trial-hint { text-style: bold; padding: 1 0; }
    ServicesScreen #services-back { dock: bottom; width: 100%; height: 3; }
    """
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self) -> None:
        """Nothing loaded yet."""
        super().__init__()
        self.catalogue: list[dict[str, Any]] | None = None
        # service id -> standing row; None until loaded or when the hub would not say.
        self.standing: dict[str, dict[str, Any]] | None = None
        self.standing_key = ""

    def compose(self) -> ComposeResult:
        """Title, the list, the hint, back."""
        with VerticalScroll(id="services-box"):
            yield Static(id="services-title")
            yield Vertical(id="service-list")
            yield Static(id="trial-hint")
        yield Button(id="services-back", variant="primary")
        yield HubStatus()

    def on_mount(self) -> None:
        """Texts, then fetch the catalogue and the customer's standing."""
        self.refresh_texts()
        self.query_one("#services-back", Button).focus()
        self.load()

    def on_screen_resume(self) -> None:
        """Back from a trial screen: the standing may have changed."""
        if self.catalogue is not None:
            self.load()

    @work(exclusive=True, group="services")
    async def load(self) -> None:
        """Fetch the catalogue, then where the customer stands with each service."""
        client, customer = self.kiosk.client, self.kiosk.customer
        try:
            catalogue = await client.services()
            standing, key = None, ""
            if customer is not None:
                try:
                    rows = await client.service_standing(customer.customer_id, customer.session)
                    standing = {row["service_id"]: row for row in rows}
                except HubRefused as exc:
                    key = exc.message_key
        except HubError as exc:
            self.kiosk.report(exc)
            return
        self.kiosk.report(None)
        self.catalogue = [s for s in catalogue if s.get("active", True)]
        self.standing, self.standing_key = standing, key
        self.refresh_texts()

    def on_hub_back(self) -> None:
        """Retry the catalogue if it never loaded."""
        if self.catalogue is None:
            self.load()

    def refresh_texts(self) -> None:
        """Every text in the current language."""
        self.query_one("#services-title", Static).update(self.t("services_title"))
        hint = self.t(self.standing_key) if self.standing_key else self.t("trial_hint")
        self.query_one("#trial-hint", Static).update(hint)
        self.query_one("#services-back", Button).label = self.t("back")
        box = self.query_one("#service-list", Vertical)
        box.remove_children()
        if self.catalogue is None:
            box.mount(Static(self.t("loading")))
            return
        box.mount_all(
            [Vertical(*self._card(s), classes="service") for s in self.catalogue]
            or [Static(self.t("no_services"))]
        )

    def _card(self, service: dict[str, Any]) -> list[Static | Button]:
        """Name, price, trial and needs; then the customer's standing or what they can do."""
        price = self.t("service_price", price=yuan(service["price_fen"]),
                       days=service["trial_days"])
        lines = [f"[b]{escape(service['name'])}[/b]", price]
        if service.get("requires"):
            lines.append(self.t("service_needs", needs=" + ".join(service["requires"]).upper()))
        card: list[Static | Button] = [Static("\n".join(lines))]
        row = (self.standing or {}).get(service["id"])
        if row is None:
            return card
        state = row["state"]
        if state == "available":
            card.append(ServiceAction(self.t("try_free", days=service["trial_days"]),
                                      service, "try"))
        elif state == "trial":
            card.append(Static(self.t("on_trial", date=self.local_date(row["ends_at"])),
                               classes="standing"))
            card.append(ServiceAction(self.t("keep_it", price=yuan(service["price_fen"])),
                                      service, "keep", row["trial_id"]))
        elif state == "subscribed":
            card.append(Static(self.t("subscribed"), classes="standing"))
        else:
            card.append(Static(self.t("trial_used"), classes="standing"))
        return card

    @on(ServiceAction.Pressed)
    def _action_pressed(self, event: ServiceAction.Pressed) -> None:
        """Open the trial (or keep) screen for the pressed service."""
        button = event.button
        if isinstance(button, ServiceAction):
            self.app.push_screen(TrialScreen(button.service, button.trial_id))

    @on(Button.Pressed, "#services-back")
    def action_back(self) -> None:
        """Back to the customer's home."""
        self.dismiss()
