"""Rotating beacon codes through the air: emitted on schedule, heard, verified by slot."""

from __future__ import annotations

from edge.modem import codes
from edge.modem.synth import emission_schedule
from tests.edge.modem.helpers import LEVEL_DBFS, decode_all

RATE = 44100
KEY = bytes(range(32))
SHORT_ID = 4242
SLOT_S = 1  # one-second slots so a short signal crosses slot edges


def test_rotating_code_is_heard_and_verifies_only_near_its_slot() -> None:
    def payload_for(t: float) -> int:
        return codes.beacon_code(SHORT_ID, KEY, codes.slot_of(t, SLOT_S))

    x = emission_schedule(payload_for, RATE, LEVEL_DBFS, period_s=0.75, duration_s=3.0)
    heard = decode_all(x, RATE, block=2048)
    assert len(heard) == 4
    for det in heard:
        slot = codes.slot_of(det.t_s, SLOT_S)
        assert codes.split_beacon_code(det.payload).short_id == SHORT_ID
        assert codes.verify_beacon_code(det.payload, KEY, slot, slot_window=0) == slot
        # A recording replayed two slots later is refused with the default window of one.
        assert codes.verify_beacon_code(det.payload, KEY, slot + 2) is None
    assert len({d.payload for d in heard}) == 3  # slots 0, 1 and 2 each have their own code
