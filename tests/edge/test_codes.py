"""The rotating beacon code and phone token scheme (shared with the hub)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.modem import codes
from storewave.wire import CodeKind

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def test_code_round_trips_and_verifies_in_its_slot() -> None:
    code = codes.beacon_code(4242, KEY, slot=1000)
    assert codes.kind_of(code) is CodeKind.BEACON
    assert codes.split_beacon_code(code).short_id == 4242
    assert codes.verify_beacon_code(code, KEY, now_slot=1000) == 1000
    assert codes.from_hex(codes.to_hex(code)) == code


def test_code_changes_every_slot() -> None:
    seen = {codes.beacon_code(7, KEY, slot) for slot in range(200)}
    assert len(seen) == 200


@pytest.mark.parametrize(("window", "offset", "ok"), [
    (1, -1, True), (1, 1, True), (1, 2, False), (1, -2, False), (0, 1, False), (3, 3, True),
])
def test_slot_window_edges(window: int, offset: int, ok: bool) -> None:
    code = codes.beacon_code(9, KEY, slot=500)
    result = codes.verify_beacon_code(code, KEY, now_slot=500 + offset, slot_window=window)
    assert (result == 500) is ok


def test_slot_boundaries() -> None:
    assert codes.slot_of(59.999, 30) == 1
    assert codes.slot_of(60.0, 30) == 2
    with pytest.raises(ValueError):
        codes.slot_of(1.0, 0)


def test_forgeries_are_refused() -> None:
    code = codes.beacon_code(9, KEY, slot=500)
    assert codes.verify_beacon_code(code, OTHER_KEY, now_slot=500) is None
    # Another beacon's id with this beacon's MAC.
    moved = code ^ (1 << codes.MAC_BITS)
    assert codes.verify_beacon_code(moved, KEY, now_slot=500) is None
    # Every single-bit flip of the MAC is caught.
    for bit in range(codes.MAC_BITS):
        assert codes.verify_beacon_code(code ^ (1 << bit), KEY, now_slot=500) is None


def test_tokens_are_tokens() -> None:
    tokens = {codes.new_phone_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(codes.kind_of(t) is CodeKind.TOKEN for t in tokens)
    with pytest.raises(ValueError, match="token"):
        codes.split_beacon_code(next(iter(tokens)))


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="short_id"):
        codes.beacon_code(codes.MAX_SHORT_ID + 1, KEY, 0)
    with pytest.raises(ValueError, match="16 bytes"):
        codes.beacon_code(1, b"short", 0)
    with pytest.raises(ValueError, match="48-bit"):
        codes.kind_of(1 << 48)
    with pytest.raises(ValueError, match="12 hex"):
        codes.from_hex("abc")
    with pytest.raises(ValueError, match="not a hex"):
        codes.from_hex("zzzzzzzzzzzz")


@given(short_id=st.integers(0, codes.MAX_SHORT_ID), slot=st.integers(-(2**40), 2**40))
def test_any_beacon_and_slot(short_id: int, slot: int) -> None:
    code = codes.beacon_code(short_id, KEY, slot)
    assert code < (1 << 47)
    assert codes.verify_beacon_code(code, KEY, slot) == slot
