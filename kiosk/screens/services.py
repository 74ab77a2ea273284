"""The services catalogue: read about each service, its price and its free trial."""

from __future__ import annotations

from typing import Any, Final

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.markup import escape
from textual.widgets import Button, Static

from kiosk.client import HubError
from kiosk.screens.common import HubStatus, KioskScreen

# Prices come in fen (1/100 yuan).
FEN_PER_YUAN: Final = 100


class ServicesScreen(KioskScreen):
    """Every active service with what it costs and how long it can be tried free."""

    DEFAULT_CSS = """
    ServicesScreen #services-box { padding: 1 2; }
    ServicesScreen #services-title { text-style: bold; color: $accent; padding: 0 0 1 0; }
    ServicesScreen .service { border: round $accent; padding: 0 1; margin: 0 0 1 0; }
    ServicesScreen #trial-hint { text-style: bold; padding: 1 0; }
    ServicesScreen #services-back { dock: bottom; width: 100%; height: 3; }
    """
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self) -> None:
        """Nothing loaded yet."""
        super().__init__()
        self.catalogue: list[dict[str, Any]] | None = None

    def compose(self) -> ComposeResult:
        """Title, the list, the trial hint, back."""
        with VerticalScroll(id="services-box"):
            yield Static(id="services-title")
            yield Vertical(id="service-list")
            yield Static(id="trial-hint")
        yield Button(id="services-back", variant="primary")
        yield HubStatus()

    def on_mount(self) -> None:
        """Texts, then fetch the catalogue."""
        self.refresh_texts()
        self.query_one("#services-back", Button).focus()
        self.load()

    @work(exclusive=True, group="services")
    async def load(self) -> None:
        """Fetch the catalogue from the hub."""
        try:
            catalogue = await self.kiosk.client.services()
        except HubError as exc:
            self.kiosk.report(exc)
            return
        self.kiosk.report(None)
        self.catalogue = [s for s in catalogue if s.get("active", True)]
        self.refresh_texts()

    def on_hub_back(self) -> None:
        """Retry the catalogue if it never loaded."""
        if self.catalogue is None:
            self.load()

    def refresh_texts(self) -> None:
        """Every text in the current language."""
        self.query_one("#services-title", Static).update(self.t("services_title"))
        self.query_one("#trial-hint", Static).update(self.t("trial_hint"))
        self.query_one("#services-back", Button).label = self.t("back")
        box = self.query_one("#service-list", Vertical)
        box.remove_children()
        if self.catalogue is None:
            box.mount(Static(self.t("loading")))
            return
        box.mount_all(
            [Static(self._describe(s), classes="service") for s in self.catalogue]
            or [Static(self.t("no_services"))]
        )

    def _describe(self, service: dict[str, Any]) -> str:
        """Name, price and trial; what the phone needs."""
        price = self.t(
            "service_price",
            price=f"{service['price_fen'] / FEN_PER_YUAN:g}",
            days=service["trial_days"],
        )
        lines = [f"[b]{escape(service['name'])}[/b]", price]
        if service.get("requires"):
            lines.append(self.t("service_needs", needs=" + ".join(service["requires"]).upper()))
        return "\n".join(lines)

    @on(Button.Pressed, "#services-back")
    def action_back(self) -> None:
        """Back to the customer's home."""
        self.dismiss()
