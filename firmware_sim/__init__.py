"""Simulated beacon firmware, store acoustics, walking phones and fleets."""
