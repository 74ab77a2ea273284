"""The in-store self-service kiosk (Textual), talking to the hub over HTTP."""
