"""What the kiosk knows about the customer in front of it: memory only, dropped on reset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kiosk.client import PhoneSession


@dataclass
class CustomerState:
    """One customer's data while they use the kiosk; never written anywhere."""

    customer_id: str
    request_id: str
    session: PhoneSession | None = None
    # None until loaded, and when the hub would not show them (phone not heard lately).
    points: int | None = None
    coupons: list[dict[str, Any]] = field(default_factory=list)
    offers: list[dict[str, Any]] = field(default_factory=list)
    recommended: list[dict[str, Any]] = field(default_factory=list)
    loaded: bool = False
