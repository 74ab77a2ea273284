"""Edge node: the ultrasonic modem, audio I/O, the edge agent and the emitter."""
