"""Pieces every kiosk screen shares: the hub status line and the language hook."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, cast

from textual.screen import Screen
from textual.widgets import Static

from kiosk.i18n import translate

if TYPE_CHECKING:
    from kiosk.app import KioskApp


class HubStatus(Static):
    """One plain sentence when the hub is down or slow; hidden otherwise."""

    DEFAULT_CSS = """
    HubStatus {
        dock: bottom;
        width: 100%;
        height: auto;
        padding: 1 2;
        background: $warning;
        color: $text;
        text-style: bold;
        display: none;
    }
    HubStatus.-shown { display: block; }
    """

    def on_mount(self) -> None:
        """Follow the app's problem and language."""
        app = cast("KioskApp", self.app)
        self.watch(app, "problem_key", self._update, init=True)
        self.watch(app, "language", self._update, init=False)

    def _update(self, _value: object = None) -> None:
        """Show the current problem in the current language, or hide."""
        app = cast("KioskApp", self.app)
        self.set_class(bool(app.problem_key), "-shown")
        self.update(translate(app.problem_key, app.language) if app.problem_key else "")


class KioskScreen(Screen[None]):
    """A screen whose texts follow the app's language."""

    @property
    def kiosk(self) -> KioskApp:
        """The app, typed."""
        return cast("KioskApp", self.app)

    def t(self, key: str, **values: object) -> str:
        """``key`` in the current language."""
        return translate(key, self.kiosk.language, **values)

    def local_date(self, moment: str | None) -> str:
        """The store's local date of an ISO time from the hub ("" when none).

        In the store's time zone once the store profile has loaded (UTC before that).
        """
        if not moment:
            return ""
        when = datetime.fromisoformat(moment)
        zone = self.kiosk.store_zone
        return (when.astimezone(zone) if zone is not None else when).date().isoformat()

    def refresh_texts(self) -> None:
        """Re-render every text in the current language (screens override)."""

    def on_hub_back(self) -> None:
        """The hub answers again: reload what failed (screens override)."""
