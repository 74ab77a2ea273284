"""ARC journeys, outbox and trials tests."""
