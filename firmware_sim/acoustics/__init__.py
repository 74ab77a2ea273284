"""The acoustic store model: air absorption, room responses, microphones, rendering."""

from firmware_sim.acoustics.absorption import air_absorption_db_per_m, speed_of_sound
from firmware_sim.acoustics.mic import FLAT_MIC, REFERENCE_PHONE_MIC, MicResponse
from firmware_sim.acoustics.render import Emission, Still, Trajectory, render
from firmware_sim.acoustics.room import Room, impulse_response

__all__ = [
    "FLAT_MIC",
    "REFERENCE_PHONE_MIC",
    "Emission",
    "MicResponse",
    "Room",
    "Still",
    "Trajectory",
    "air_absorption_db_per_m",
    "impulse_response",
    "render",
    "speed_of_sound",
]
