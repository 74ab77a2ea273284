"""The kiosk's screens: attract, identify, home."""
