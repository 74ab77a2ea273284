"""The ARC free-trial loop (SEEDS.md 2): acquire (eligibility, channel, commission), care, convert.

The journey itself is data (``ARC_JOURNEY``, published on first use); this module holds
the business rules around it: who may start a trial, what a usage report, a rating, a
reason or a conversion does, and look-alike tagging of customers for future targeting.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from hub.models.customers import Customer, CustomerTag, TagCreate, TagKind
from hub.models.registry import Store
from hub.models.services_catalogue import (
    ConvertChannel,
    DataService,
    DataServiceCreate,
    NonConversionReason,
    Subscription,
    Trial,
    TrialStart,
    TrialState,
)
from hub.models.timers import Timer
from hub.models.types import new_id
from hub.services import journeys, timers
from hub.services.customers import add_tag
from hub.services.errors import Conflict, Invalid, NotFound
from hub.services.journeys.quiet import zone

log = logging.getLogger(__name__)

JOURNEY = "arc"
SERVICES_FILE = Path(__file__).resolve().parents[2] / "seeds" / "services.json"
EXPIRY_TIMER = "arc.trial_expiry"
EV_USAGE = "trial.usage"
EV_RATED = "trial.rated"
EV_REASON = "trial.reason"
EV_CONVERTED = "trial.converted"
FEN_PER_YUAN = 100
# SEEDS.md 2: a 4 or 5 out of 5 is a high rating, worth a referral invitation.
HIGH_RATING = 4
RATING_MIN, RATING_MAX = 1, 5
# Tags that describe a trial's outcome, not the customer: left out of look-alike signatures.
OUTCOME_TAGS = ("arc_converter", "arc_non_converter", "lookalike_converter",
                "lookalike_non_converter")
CONVERT_WORDS = frozenset({"y", "yes", "keep", "ok"})
REASON_WORDS = {
    "price": NonConversionReason.PRICE,
    "expensive": NonConversionReason.PRICE,
    "useful": NonConversionReason.NOT_USEFUL,
    "not useful": NonConversionReason.NOT_USEFUL,
    "network": NonConversionReason.NETWORK,
    "other": NonConversionReason.OTHER,
}

# The shipped definition. Days are counted from the trial start; the reminder goes three
# days before expiry (time to decide, close enough to matter) and the agent call a day
# later; the reason question waits three days for an answer.
ARC_JOURNEY: dict[str, Any] = {
    "name": JOURNEY,
    "description": "ARC free trial: care (manual, usage helper, day-15 rating, referral) "
    "and convert (reminder, agent call, reason, bundle offer).",
    "entry": "after_exit",
    "max_length": "P40D",
    "quiet_hours": {"start": "21:00", "end": "08:00", "timezone": "customer"},
    "exit_on": [EV_CONVERTED],
    "start": "manual",
    "steps": [
        {"id": "manual", "type": "send", "channel": "mms", "purpose": "service",
         "template": "Welcome to your free $service_name trial until $ends_date. "
         "Your service manual is attached.", "next": "wait_usage"},
        {"id": "wait_usage", "type": "wait", "until": "$started_at", "offset": "P10D",
         "next": "usage_check"},
        {"id": "usage_check", "type": "branch",
         "cases": [{"when": [{"var": "usage_low", "op": "eq", "value": True}],
                    "next": "usage_helper"},
                   {"when": [{"var": "usage_mb", "op": "missing"}], "next": "usage_helper"}],
         "otherwise": "wait_rate"},
        {"id": "usage_helper", "type": "send", "channel": "sms",
         "template": "Getting the most from $service_name: open the app, tap Data, "
         "and turn it on for video and music.", "next": "wait_rate"},
        {"id": "wait_rate", "type": "wait", "until": "$started_at", "offset": "P15D",
         "next": "rate"},
        {"id": "rate", "type": "send", "channel": "sms",
         "template": "How do you like $service_name? Reply 1-5 (5 = great).",
         "next": "await_rating"},
        {"id": "await_rating", "type": "wait_event", "event": EV_RATED, "timeout": "P5D",
         "on_event": "rating_check", "on_timeout": "wait_remind"},
        {"id": "rating_check", "type": "branch",
         "cases": [{"when": [{"var": "rating", "op": "ge", "value": HIGH_RATING}],
                    "next": "refer"}],
         "otherwise": "wait_remind"},
        {"id": "refer", "type": "send", "channel": "sms",
         "template": "Thanks! Share $service_name with a friend: they get a free month too.",
         "next": "wait_remind"},
        {"id": "wait_remind", "type": "wait", "until": "$ends_at", "offset": "-P3D",
         "next": "remind"},
        {"id": "remind", "type": "send", "channel": "sms",
         "template": "Your $service_name trial ends on $ends_date. Reply Y to keep it "
         "for $price_yuan yuan a month.", "next": "call"},
        {"id": "call", "type": "task", "kind": "call", "due_in": "P1D",
         "title": "Reminder call: $service_name trial ends $ends_date", "next": "wait_expiry"},
        {"id": "wait_expiry", "type": "wait", "until": "$ends_at", "next": "ask_reason"},
        {"id": "ask_reason", "type": "send", "channel": "sms",
         "template": "Your $service_name trial has ended. What stopped you? Reply PRICE, "
         "USEFUL, NETWORK or OTHER.", "next": "await_reason"},
        {"id": "await_reason", "type": "wait_event", "event": EV_REASON, "timeout": "P3D",
         "on_event": "reason_check", "on_timeout": "tag_non_converter"},
        {"id": "reason_check", "type": "branch",
         "cases": [{"when": [{"var": "reason", "op": "eq", "value": "price"}],
                    "next": "bundle"}],
         "otherwise": "tag_non_converter"},
        {"id": "bundle", "type": "send", "channel": "sms", "template": "$bundle_offer",
         "next": "tag_non_converter"},
        {"id": "tag_non_converter", "type": "tag", "kind": "profile",
         "name": "arc_non_converter", "value": "$service_id", "next": "done"},
        {"id": "done", "type": "end", "outcome": "not_converted"},
    ],
}


def ensure_journey(session: Session, now: datetime) -> None:
    """Publish the shipped ARC definition unless its latest stored version is the same."""
    spec = journeys.parse_spec(ARC_JOURNEY).model_dump(mode="json")
    try:
        if journeys.latest(session, JOURNEY).spec == spec:
            return
    except NotFound:
        pass
    journeys.publish(session, ARC_JOURNEY, now)


def get_service(session: Session, service_id: str) -> DataService:
    """A catalogue service, or NotFound."""
    service = session.get(DataService, service_id)
    if service is None:
        raise NotFound(f"service {service_id!r} not found")
    return service


def get_trial(session: Session, trial_id: str) -> Trial:
    """A trial, or NotFound."""
    trial = session.get(Trial, trial_id)
    if trial is None:
        raise NotFound(f"trial {trial_id!r} not found")
    return trial


def check_eligible(session: Session, service: DataService, customer: Customer,
                   handset: list[str]) -> None:
    """Raise unless the service fits the handset, is not held or tried, and SMS consent exists."""
    if not service.active:
        raise Invalid(f"service {service.id!r} is not offered", code="service_inactive")
    missing = sorted(set(service.requires) - set(handset))
    if missing:
        raise Invalid(f"handset lacks {', '.join(missing)} needed by {service.id!r}",
                      code="handset_incompatible")
    if session.execute(select(Subscription.id).where(
            Subscription.customer_id == customer.id,
            Subscription.service_id == service.id)).first() is not None:
        raise Conflict("customer already subscribes to this service", code="already_subscribed")
    if session.execute(select(Trial.id).where(
            Trial.customer_id == customer.id, Trial.service_id == service.id)).first() is not None:
        raise Conflict("customer already had a trial of this service", code="already_trialled")
    if not customer.consent_marketing_sms:
        raise Invalid("customer has not consented to marketing SMS", code="no_consent")


def start_trial(session: Session, spec: TrialStart, now: datetime) -> Trial:
    """Check eligibility, record the trial (channel, staff for commission), start the journey."""
    service = get_service(session, spec.service_id)
    customer = session.get(Customer, spec.customer_id)
    if customer is None:
        raise NotFound(f"customer {spec.customer_id!r} not found")
    store = session.get(Store, spec.store_id)
    if store is None:
        raise NotFound(f"store {spec.store_id!r} not found")
    check_eligible(session, service, customer, spec.handset)
    ensure_journey(session, now)
    ends_at = now + timedelta(days=service.trial_days)
    trial = Trial(
        id=new_id("tri"), service_id=service.id, customer_id=customer.id, store_id=store.id,
        city=store.region_id, channel=spec.channel.value, staff_id=spec.staff_id,
        handset=list(spec.handset), active_key=f"{customer.id}:{service.id}",
        started_at=now, ends_at=ends_at,
    )
    try:
        with session.begin_nested():
            session.add(trial)
    except IntegrityError:
        raise Conflict("a trial of this service is already running", code="trial_active") from None
    local_end = ends_at.astimezone(zone(store.timezone))
    instance = journeys.enrol(
        session, JOURNEY, customer.id, now, store_id=store.id,
        context={
            "trial_id": trial.id, "service_id": service.id, "service_name": service.name,
            "price_yuan": f"{service.price_fen / FEN_PER_YUAN:g}",
            "bundle_offer": service.bundle_offer or f"Ask us about bundles with {service.name}.",
            "started_at": now.isoformat(), "ends_at": ends_at.isoformat(),
            "ends_date": local_end.date().isoformat(),
        },
    )
    trial.instance_id = instance.id
    session.add(trial)
    timers.schedule(session, EXPIRY_TIMER, trial.id, ends_at, {"trial_id": trial.id}, now=now)
    log.info("trial started", extra={"trial_id": trial.id, "service_id": service.id,
                                     "channel": trial.channel, "store_id": store.id})
    return trial


def report_usage(session: Session, trial: Trial, usage_mb: float, now: datetime) -> Trial:
    """Record the usage reported for a trial; the care stage reads it at its usage check."""
    service = get_service(session, trial.service_id)
    trial.usage_mb = usage_mb
    session.add(trial)
    journeys.deliver_event(session, trial.customer_id, EV_USAGE, now,
                           {"usage_mb": usage_mb, "usage_low": usage_mb < service.low_usage_mb},
                           journey=JOURNEY)
    return trial


def rate(session: Session, trial: Trial, rating: int, feedback: str | None,
         now: datetime) -> Trial:
    """Record a 1-5 rating (and feedback); a high rater gets the referral invitation."""
    if not RATING_MIN <= rating <= RATING_MAX:
        raise Invalid("rating must be 1-5", code="invalid_rating")
    trial.rating = rating
    if feedback:
        trial.feedback = feedback
    session.add(trial)
    journeys.deliver_event(session, trial.customer_id, EV_RATED, now, {"rating": rating},
                           journey=JOURNEY)
    return trial


def record_reason(session: Session, trial: Trial, reason: NonConversionReason,
                  now: datetime) -> Trial:
    """Record why a trial did not convert; a price reason gets the bundle offer."""
    if trial.state == TrialState.CONVERTED:
        raise Conflict("trial converted; there is no reason to capture", code="converted")
    trial.reason = reason.value
    session.add(trial)
    journeys.deliver_event(session, trial.customer_id, EV_REASON, now, {"reason": reason.value},
                           journey=JOURNEY)
    return trial


def convert(session: Session, trial: Trial, channel: ConvertChannel, now: datetime) -> Trial:
    """One-step conversion: subscribe, end the journey (its queued messages and calls go)."""
    if trial.state == TrialState.CONVERTED:
        raise Conflict("trial already converted", code="already_converted")
    service = get_service(session, trial.service_id)
    trial.state = TrialState.CONVERTED
    trial.active_key = None
    trial.converted_at = now
    trial.convert_channel = channel.value
    session.add(trial)
    session.add(Subscription(customer_id=trial.customer_id, service_id=service.id,
                             trial_id=trial.id, price_fen=service.price_fen, started_at=now))
    timers.cancel(session, EXPIRY_TIMER, trial.id)
    journeys.deliver_event(session, trial.customer_id, EV_CONVERTED, now,
                           {"converted": True}, journey=JOURNEY)
    customer = session.get(Customer, trial.customer_id)
    if customer is not None:
        add_tag(session, customer, TagCreate(kind=TagKind.PROFILE, name="arc_converter",
                                             value=service.id), now)
    log.info("trial converted", extra={"trial_id": trial.id, "channel": channel.value})
    return trial


@timers.timer_handler(EXPIRY_TIMER)
def _on_expiry(session: Session, timer: Timer, now: datetime) -> None:
    """The trial period is over without conversion."""
    trial = session.get(Trial, timer.payload["trial_id"])
    if trial is not None and trial.state == TrialState.ACTIVE:
        trial.state = TrialState.EXPIRED
        trial.active_key = None
        session.add(trial)


def latest_trial(session: Session, customer_id: str) -> Trial | None:
    """The customer's most recent trial."""
    return session.execute(
        select(Trial).where(Trial.customer_id == customer_id)
        .order_by(Trial.started_at.desc()).limit(1)  # type: ignore[attr-defined]
    ).scalar_one_or_none()


def handle_reply(session: Session, customer: Customer, text: str, now: datetime) -> str:
    """Act on an SMS reply: Y converts, 1-5 rates, a reason word records the reason."""
    trial = latest_trial(session, customer.id)
    word = text.strip().lower()
    if trial is None:
        return "ignored"
    if word in CONVERT_WORDS and trial.state != TrialState.CONVERTED:
        convert(session, trial, ConvertChannel.REPLY, now)
        return "converted"
    if word.isdigit() and RATING_MIN <= int(word) <= RATING_MAX:
        rate(session, trial, int(word), None, now)
        return "rated"
    if word in REASON_WORDS and trial.state != TrialState.CONVERTED:
        record_reason(session, trial, REASON_WORDS[word], now)
        return "reason"
    return "ignored"


def _signature(customer: Customer, tags: list[tuple[str, str]]) -> tuple[Any, ...]:
    """What makes two customers look alike: profile fields and their non-outcome tags."""
    names = sorted(f"{kind}:{name}" for kind, name in tags if name not in OUTCOME_TAGS)
    return (customer.gender, customer.age_band, tuple(names))


def tag_lookalikes(session: Session, service_id: str, now: datetime) -> dict[str, int]:
    """Tag customers who never tried ``service_id`` but look like its converters/non-converters.

    Each signature (gender, age band, tags) is labelled by the majority outcome of the
    trials that share it; ties go to "converter" (the cheaper mistake: one extra offer).
    """
    get_service(session, service_id)
    tags_by_customer: dict[str, list[tuple[str, str]]] = {}
    for cid, kind, name in session.execute(
            select(CustomerTag.customer_id, CustomerTag.kind, CustomerTag.name)):
        tags_by_customer.setdefault(cid, []).append((kind, name))
    outcome: dict[str, str] = {}
    for cid, state in session.execute(
            select(Trial.customer_id, Trial.state).where(Trial.service_id == service_id)):
        if state != TrialState.ACTIVE:
            outcome[cid] = "converter" if state == TrialState.CONVERTED else "non_converter"
    votes: dict[tuple[Any, ...], Counter[str]] = {}
    customers = list(session.execute(select(Customer)).scalars())
    for customer in customers:
        if customer.id in outcome:
            sig = _signature(customer, tags_by_customer.get(customer.id, []))
            votes.setdefault(sig, Counter())[outcome[customer.id]] += 1
    tried = set(session.execute(
        select(Trial.customer_id).where(Trial.service_id == service_id)).scalars())
    counts = {"converter": 0, "non_converter": 0}
    for customer in customers:
        if customer.id in tried:
            continue
        vote = votes.get(_signature(customer, tags_by_customer.get(customer.id, [])))
        if not vote:
            continue
        label = "converter" if vote["converter"] >= vote["non_converter"] else "non_converter"
        add_tag(session, customer, TagCreate(kind=TagKind.PROFILE, name=f"lookalike_{label}",
                                             value=service_id), now)
        counts[label] += 1
    return counts


def load_service_catalogue(session: Session, path: Path | None = None) -> int:
    """Create the catalogue services in ``seeds/services.json`` that do not exist; return count.

    ``hub.seed.load_seeds`` should call this after the registry (it does not commit).
    """
    file = path or SERVICES_FILE
    try:
        data = json.loads(file.read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise Invalid(f"service catalogue {file}: {exc}", code="bad_seed") from None
    created = 0
    for raw in data.get("services", []):
        try:
            spec = DataServiceCreate.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            raise Invalid(f"service {raw.get('id', '?')!r}: {first['loc']}: {first['msg']}",
                          code="bad_seed") from None
        if session.get(DataService, spec.id) is None:
            session.add(DataService.model_validate(spec))
            created += 1
    session.flush()
    return created
