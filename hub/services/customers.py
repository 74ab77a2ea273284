"""Customer profile rules: attributes, consents (incl. microphone disclosure), tags, erasure."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from hub.models.checkins import CheckinAttempt, PhoneToken, Presence, Visit
from hub.models.customers import (
    Customer,
    CustomerPublic,
    CustomerSession,
    CustomerTag,
    CustomerUpdate,
    OtpChallenge,
    OutboxMessage,
    TagCreate,
    TagPublic,
)
from hub.services.errors import Invalid, NotFound

log = logging.getLogger(__name__)


def get_customer(session: Session, customer_id: str) -> Customer:
    """The customer, or NotFound."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id!r} not found")
    return customer


def to_public(session: Session, customer: Customer) -> CustomerPublic:
    """The API view of a customer: attributes, consents, tags; never the phone."""
    tags = session.exec(
        select(CustomerTag)
        .where(CustomerTag.customer_id == customer.id)
        .order_by(CustomerTag.kind, CustomerTag.name)
    ).all()
    public = CustomerPublic.model_validate(customer, from_attributes=True)
    public.tags = [TagPublic(kind=t.kind, name=t.name, value=t.value) for t in tags]
    return public


def update_customer(
    session: Session, customer: Customer, spec: CustomerUpdate, now: datetime
) -> Customer:
    """Apply the fields that were sent; accepting the microphone needs a disclosure version."""
    fields = spec.model_dump(exclude_unset=True)
    accepted = fields.pop("microphone_accepted", None)
    for name, value in fields.items():
        setattr(customer, name, value.value if hasattr(value, "value") else value)
    if accepted is True:
        if not customer.microphone_disclosure_version:
            raise Invalid(
                "accepting microphone use needs the microphone_disclosure_version the app showed",
                code="disclosure_missing",
            )
        customer.microphone_accepted_at = now
    elif accepted is False:
        customer.microphone_accepted_at = None
    session.add(customer)
    return customer


def add_tag(session: Session, customer: Customer, spec: TagCreate, now: datetime) -> CustomerTag:
    """Set a tag (same kind and name: the value is replaced)."""
    tag = session.exec(
        select(CustomerTag).where(
            CustomerTag.customer_id == customer.id,
            CustomerTag.kind == spec.kind.value,
            CustomerTag.name == spec.name,
        )
    ).first()
    if tag is None:
        tag = CustomerTag(
            customer_id=customer.id, kind=spec.kind.value, name=spec.name, created_at=now
        )
    tag.value = spec.value
    session.add(tag)
    return tag


def remove_tag(session: Session, customer: Customer, kind: str, name: str) -> None:
    """Remove a tag, or NotFound."""
    tag = session.exec(
        select(CustomerTag).where(
            CustomerTag.customer_id == customer.id,
            CustomerTag.kind == kind,
            CustomerTag.name == name,
        )
    ).first()
    if tag is None:
        raise NotFound(f"tag {kind}/{name} not found")
    session.delete(tag)


def erase_customer(session: Session, customer: Customer) -> int:
    """Erase-my-data: delete every personal row; keep visits detached as anonymous counts.

    Returns how many visits were kept (store, time and zone path, no customer link).
    """
    cid = customer.id
    kept = session.exec(
        update(Visit).where(Visit.customer_id == cid).values(customer_id=None)  # type: ignore[call-overload]
    ).rowcount
    for model in (
        CustomerSession,
        PhoneToken,
        Presence,
        CustomerTag,
        OutboxMessage,
        CheckinAttempt,
    ):
        session.exec(delete(model).where(model.customer_id == cid))  # type: ignore[call-overload,attr-defined]
    challenge_ids = session.exec(
        select(OtpChallenge.id).where(OtpChallenge.phone_hash == customer.phone_hash)
    ).all()
    # Codes sent before the customer existed carry the number but no customer link.
    otp_keys = [f"otp:{i}" for i in challenge_ids]
    session.exec(delete(OutboxMessage).where(col(OutboxMessage.dedupe_key).in_(otp_keys)))  # type: ignore[call-overload]
    session.exec(delete(OtpChallenge).where(OtpChallenge.phone_hash == customer.phone_hash))  # type: ignore[call-overload]
    session.delete(customer)
    session.flush()
    log.info("customer erased", extra={"visits_kept": kept})
    return int(kept or 0)
