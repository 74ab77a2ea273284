"""The attract screen: store name, what the kiosk does, touch to start."""

from __future__ import annotations

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Vertical
from textual.markup import escape
from textual.widgets import Button, Static

from kiosk.screens.common import HubStatus, KioskScreen


class AttractScreen(KioskScreen):
    """Shown while nobody uses the kiosk; any touch or Enter starts."""

    DEFAULT_CSS = """
    AttractScreen { align: center middle; }
    AttractScreen #attract-box { width: 80%; height: auto; align: center middle; }
    AttractScreen #welcome {
        width: 100%; content-align: center middle; text-style: bold; color: $accent;
        padding: 1 0;
    }
    AttractScreen #can-do { width: 100%; content-align: center middle; padding: 1 0; }
    AttractScreen #start { width: 40; height: 5; margin: 1 0; }
    AttractScreen #language { width: 20; height: 3; }
    """
    BINDINGS = [Binding("enter,space", "start", "Start", show=False)]

    def compose(self) -> ComposeResult:
        """Welcome, what we offer, the start and language buttons, the hub status."""
        with Vertical(id="attract-box"):
            yield Static(id="welcome")
            yield Static(id="can-do")
            with Center():
                yield Button(id="start", variant="primary")
            with Center():
                yield Button(id="language")
        yield HubStatus()

    def on_mount(self) -> None:
        """Fill the texts; focus the start button."""
        self.refresh_texts()
        self.query_one("#start", Button).focus()

    def refresh_texts(self) -> None:
        """Texts in the current language, with the store's name."""
        self.query_one("#welcome", Static).update(
            self.t("welcome", store=escape(self.kiosk.store_name))
        )
        self.query_one("#can-do", Static).update(self.t("can_do"))
        self.query_one("#start", Button).label = self.t("touch_to_start")
        self.query_one("#language", Button).label = self.t("language")

    def on_hub_back(self) -> None:
        """The hub answers again: fetch the store name if we still lack it."""
        self.kiosk.load_store()

    def action_start(self) -> None:
        """Go to the identify screen."""
        self.kiosk.start_identify()

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        """The start button starts."""
        self.action_start()

    @on(Button.Pressed, "#language")
    def _language_pressed(self, event: Button.Pressed) -> None:
        """Switch the language without starting."""
        event.stop()
        self.kiosk.action_toggle_language()

    def on_click(self, event: events.Click) -> None:
        """A touch anywhere outside the buttons also starts."""
        if not isinstance(event.widget, Button):
            self.action_start()
