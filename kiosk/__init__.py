"""The in-store self-service kiosk (Textual), talking to the hub over HTTP."""

# Issue 10: a walk-away customer's data leaves the screen after a minute of no touch.
DEFAULT_IDLE_TIMEOUT_S = 60.0
