"""The hub's MQTT side: managed broker, node credentials, lossless ingest, node control."""
