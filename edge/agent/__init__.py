"""The edge agent: audio -> detector -> debounced events -> on-disk outbox -> MQTT, and back."""
