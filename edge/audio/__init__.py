"""Audio I/O for the edge node: sound-card, WAV and simulated input; the beacon emitter."""
