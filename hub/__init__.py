"""The hub: FastAPI + SQLModel API, MQTT ingest, business services."""
