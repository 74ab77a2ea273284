"""Every table of the hub, imported here so SQLModel.metadata (and Alembic) sees them all."""

from __future__ import annotations

import importlib

from hub.models.analytics import StoreRevenue
from hub.models.auth import ApiKey, Role
from hub.models.campaigns import Campaign, CampaignGrant
from hub.models.checkins import CheckinAttempt, PhoneToken, Presence, Visit, VisitZone
from hub.models.coupons import Coupon, CouponEvent, CouponTemplate
from hub.models.customers import (
    Customer,
    CustomerSession,
    CustomerTag,
    OtpChallenge,
    OutboxMessage,
)
from hub.models.journeys import (
    DoNotContact,
    JourneyDefinition,
    JourneyInstance,
    OutboxDelivery,
    StaffTask,
)
from hub.models.kiosk import QueueTicket, VisitRating
from hub.models.oao import (
    OaoDispatch,
    OaoOrder,
    OaoRegionPolicy,
    OaoSheet,
    OaoStoreProfile,
    OaoTransition,
)
from hub.models.points import PointsAccount, PointsEntry
from hub.models.registry import Alert, Beacon, BeaconHearing, Node, Region, Store, Zone
from hub.models.services_catalogue import DataService, Subscription, Trial
from hub.models.timers import Timer, TimerState

# The MQTT ingest tables live with the ingest code; the hub runs without them only
# while that package does not exist yet. Any other import error is a real bug.
try:
    importlib.import_module("hub.mqtt.models")
except ModuleNotFoundError as exc:
    if exc.name not in ("hub.mqtt", "hub.mqtt.models"):
        raise

__all__ = [
    "Alert",
    "ApiKey",
    "Beacon",
    "BeaconHearing",
    "Campaign",
    "CampaignGrant",
    "CheckinAttempt",
    "Coupon",
    "CouponEvent",
    "CouponTemplate",
    "Customer",
    "CustomerSession",
    "CustomerTag",
    "DataService",
    "DoNotContact",
    "JourneyDefinition",
    "JourneyInstance",
    "Node",
    "OaoDispatch",
    "OaoOrder",
    "OaoRegionPolicy",
    "OaoSheet",
    "OaoStoreProfile",
    "OaoTransition",
    "OtpChallenge",
    "OutboxDelivery",
    "OutboxMessage",
    "PhoneToken",
    "PointsAccount",
    "PointsEntry",
    "Presence",
    "QueueTicket",
    "Region",
    "Role",
    "StaffTask",
    "Store",
    "StoreRevenue",
    "Subscription",
    "Timer",
    "TimerState",
    "Trial",
    "Visit",
    "VisitRating",
    "VisitZone",
    "Zone",
]
