"""Cross-sell: a ranked main push and secondary pushes per customer, each with its reason.

Rules read the customer's tags (basic, application, profile) and attributes (age band);
every matching rule adds its weight to an offer and says why. The catalogue is data, so
a new offer is one more ``Rule`` line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import Session, select

from hub.models.customers import Customer, CustomerTag
from hub.models.oao import CrossSellOffer, CrossSellPublic
from hub.services.errors import NotFound

# One main push for the agent to lead with, then at most two more (a call's attention span).
SECONDARY_LIMIT = 2
# Weights: a direct need (old broadband, no STB for a video user) beats a profile guess.
STRONG = 3.0
MEDIUM = 2.0
WEAK = 1.0

OFFERS = {
    "fibre_1000m": "1000M fibre upgrade",
    "iptv_stb": "IPTV set-top box",
    "family_bundle": "Family bundle (shared data, extra cards)",
    "secondary_card": "Secondary SIM card",
    "data_addon": "Monthly data add-on",
    "plan_5g": "5G plan upgrade",
    "senior_care": "Senior care plan",
    "youth_plan": "Youth plan",
    "cloud_storage": "Cloud photo storage",
}


@dataclass(frozen=True)
class Profile:
    """What the rules look at: tags as {(kind, name): value} and the age band."""

    tags: dict[tuple[str, str], str]
    age_band: str | None

    def has(self, kind: str, name: str) -> bool:
        """Whether the tag exists."""
        return (kind, name) in self.tags

    def value(self, kind: str, name: str) -> str:
        """The tag's value, lower-cased ('' when absent)."""
        return self.tags.get((kind, name), "").lower()


@dataclass(frozen=True)
class Rule:
    """If ``when`` holds, ``offer`` gains ``weight`` for ``reason``."""

    offer: str
    weight: float
    reason: str
    when: Callable[[Profile], bool]


def _few_cards(p: Profile) -> bool:
    """No or unknown secondary cards."""
    return p.value("basic", "secondary_cards") in ("", "0")


RULES: tuple[Rule, ...] = (
    Rule(
        "fibre_1000m",
        STRONG,
        "broadband is copper or at most 100M",
        lambda p: any(s in p.value("basic", "broadband") for s in ("copper", "100m", "50m")),
    ),
    Rule(
        "fibre_1000m",
        MEDIUM,
        "heavy video use",
        lambda p: p.value("application", "video_app") == "heavy",
    ),
    Rule(
        "iptv_stb",
        STRONG,
        "watches video but has no set-top box",
        lambda p: (
            p.has("application", "video_app") and p.value("basic", "set_top_box") in ("", "none")
        ),
    ),
    Rule(
        "family_bundle", STRONG, "profile: family household", lambda p: p.has("profile", "family")
    ),
    Rule("family_bundle", WEAK, "already pays for secondary cards", lambda p: not _few_cards(p)),
    Rule(
        "secondary_card",
        MEDIUM,
        "family household without secondary cards",
        lambda p: p.has("profile", "family") and _few_cards(p),
    ),
    Rule(
        "data_addon",
        MEDIUM,
        "heavy mobile app use",
        lambda p: any(p.value("application", a) == "heavy" for a in ("video_app", "game_app")),
    ),
    Rule(
        "plan_5g",
        MEDIUM,
        "current plan is not 5G",
        lambda p: p.has("basic", "plan") and "5g" not in p.value("basic", "plan"),
    ),
    Rule("senior_care", STRONG, "age band 65+", lambda p: p.age_band == "65+"),
    Rule("senior_care", WEAK, "age band 55-64", lambda p: p.age_band == "55-64"),
    Rule("youth_plan", MEDIUM, "age band under 25", lambda p: p.age_band in ("<18", "18-24")),
    Rule("cloud_storage", MEDIUM, "uses a photo app", lambda p: p.has("application", "photo_app")),
)


def rank(profile: Profile) -> list[CrossSellOffer]:
    """Every offer some rule matched, best first (score, then code), with joined reasons."""
    scores: dict[str, float] = {}
    reasons: dict[str, list[str]] = {}
    for rule in RULES:
        if rule.when(profile):
            scores[rule.offer] = scores.get(rule.offer, 0.0) + rule.weight
            reasons.setdefault(rule.offer, []).append(rule.reason)
    ordered = sorted(scores, key=lambda code: (-scores[code], code))
    return [
        CrossSellOffer(code=c, name=OFFERS[c], score=scores[c], reason="; ".join(reasons[c]))
        for c in ordered
    ]


def for_customer(session: Session, customer_id: str) -> CrossSellPublic:
    """The main push and secondary pushes for a customer (NotFound if unknown)."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id!r} not found")
    tags = session.exec(select(CustomerTag).where(CustomerTag.customer_id == customer_id)).all()
    profile = Profile({(t.kind, t.name): t.value for t in tags}, customer.age_band)
    ranked = rank(profile)
    return CrossSellPublic(
        customer_id=customer_id,
        main_push=ranked[0] if ranked else None,
        secondary_push=ranked[1 : 1 + SECONDARY_LIMIT],
    )
