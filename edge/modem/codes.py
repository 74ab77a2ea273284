"""The 48-bit code scheme: rotating beacon codes and phone tokens (shared with the hub).

Layout of the 48-bit payload, most significant bit first::

    bit 47      kind: 0 = beacon code, 1 = phone token
    beacon:     bits 46..30  short id (17 bits, 131,072 beacons per deployment)
                bits 29..0   MAC (30 bits) = HMAC-SHA256(key, "sw-beacon-v1" | short id | slot)
    token:      bits 46..0   random (47 bits), issued and remembered by the hub

Why these widths: a deployment of 20,000 stores with several beacons each needs more
than 16 bits of id; a 30-bit MAC gives a blind forger one chance in 10^9 per guess,
and the hub's per-customer and per-code rate limits cap guesses at a few per minute,
so forging a code stays out of reach while the payload stays 48 bits (short airtime).
The time slot (default 30 s) makes every code expire: a recording replayed outside
``slot_window`` slots of the current one is refused (Shoplat's fixed codes could be).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from storewave.wire import CodeKind

PAYLOAD_BITS = 48
KIND_BIT = 1 << 47
SHORT_ID_BITS = 17
MAC_BITS = 30
MAX_SHORT_ID = (1 << SHORT_ID_BITS) - 1
_MAC_MASK = (1 << MAC_BITS) - 1
_TOKEN_MASK = (1 << 47) - 1
# Domain separation so a beacon key can never be used to forge anything else.
_MAC_DOMAIN = b"sw-beacon-v1"
# A key shorter than 128 bits would be the weakest link in the scheme.
MIN_KEY_BYTES = 16
DEFAULT_SLOT_S = 30
# One slot either side absorbs clock skew between beacon and hub and the seconds a
# phone takes to hear and send; wider would lengthen the replay window for no gain.
DEFAULT_SLOT_WINDOW = 1


@dataclass(frozen=True, slots=True)
class BeaconCode:
    """A decoded beacon code: whose it is and the (still unverified) MAC."""

    short_id: int
    mac: int


def kind_of(payload: int) -> CodeKind:
    """Whether a 48-bit payload is a beacon code or a phone token."""
    _check_payload(payload)
    return CodeKind.TOKEN if payload & KIND_BIT else CodeKind.BEACON


def slot_of(unix_s: float, slot_s: int = DEFAULT_SLOT_S) -> int:
    """The time slot number that ``unix_s`` falls in."""
    if slot_s <= 0:
        raise ValueError("slot_s must be positive")
    return int(unix_s // slot_s)


def _mac(key: bytes, short_id: int, slot: int) -> int:
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"beacon key must be at least {MIN_KEY_BYTES} bytes")
    msg = _MAC_DOMAIN + short_id.to_bytes(3, "big") + slot.to_bytes(8, "big", signed=True)
    digest = hmac.new(key, msg, hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big") & _MAC_MASK


def beacon_code(short_id: int, key: bytes, slot: int) -> int:
    """The 48-bit code beacon ``short_id`` plays during ``slot``."""
    if not 0 <= short_id <= MAX_SHORT_ID:
        raise ValueError(f"short_id must be in 0..{MAX_SHORT_ID}")
    return (short_id << MAC_BITS) | _mac(key, short_id, slot)


def split_beacon_code(payload: int) -> BeaconCode:
    """Read the short id and MAC out of a beacon code (no verification)."""
    if kind_of(payload) is not CodeKind.BEACON:
        raise ValueError("payload is a phone token, not a beacon code")
    return BeaconCode(short_id=payload >> MAC_BITS, mac=payload & _MAC_MASK)


def verify_beacon_code(
    payload: int,
    key: bytes,
    now_slot: int,
    slot_window: int = DEFAULT_SLOT_WINDOW,
) -> int | None:
    """Return the slot the code was made for if it lies within ``slot_window`` of ``now_slot``.

    ``None`` means forged, for another beacon's key, or outside the window (a replay).
    Compares MACs in constant time.
    """
    if slot_window < 0:
        raise ValueError("slot_window must be >= 0")
    code = split_beacon_code(payload)
    # Nearest slots first, so the common case (current slot) costs one HMAC.
    for offset in sorted(range(-slot_window, slot_window + 1), key=abs):
        slot = now_slot + offset
        if hmac.compare_digest(
            _mac(key, code.short_id, slot).to_bytes(4, "big"), code.mac.to_bytes(4, "big")
        ):
            return slot
    return None


def new_phone_token() -> int:
    """A fresh random phone token (kind bit set, 47 random bits)."""
    return KIND_BIT | (secrets.randbits(47) & _TOKEN_MASK)


def new_beacon_key() -> bytes:
    """A fresh 256-bit beacon key."""
    return secrets.token_bytes(32)


def to_hex(payload: int) -> str:
    """12 lower-case hex digits, the form codes take in JSON and URLs."""
    _check_payload(payload)
    return f"{payload:012x}"


def from_hex(text: str) -> int:
    """Parse 12 hex digits into a payload, with a clear error otherwise."""
    if len(text) != 12:
        raise ValueError(f"a code is 12 hex digits, got {len(text)} characters")
    try:
        return int(text, 16)
    except ValueError:
        raise ValueError(f"not a hex code: {text!r}") from None


def _check_payload(payload: int) -> None:
    if not 0 <= payload < (1 << PAYLOAD_BITS):
        raise ValueError("payload must be a 48-bit unsigned integer")
