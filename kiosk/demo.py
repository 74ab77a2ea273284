"""``storewave kiosk --demo DIR``: a seeded hub in this process, its SMS codes in a file."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Final

from sqlalchemy import func
from sqlmodel import Session, col, select

from hub.clock import Clock, SystemClock
from hub.embedded import EmbeddedHub, start_embedded_hub
from hub.models.auth import Role
from hub.models.customers import OutboxMessage
from storewave.demo_world import sign_in_phone

log = logging.getLogger(__name__)

# The demo's texted codes land here (there is no SMS gateway in a demo).
SMS_FILE: Final = "sms.txt"
# A tester reads the file within a second of asking for a code.
SMS_POLL_S: Final = 0.5
# Show only the last digits of a number: enough to tell demo phones apart.
SHOWN_DIGITS: Final = 4
# The number the README's tmux walk-through signs in with; it has an order to pick up.
DEMO_PHONE: Final = "+8613800138000"
DEMO_ORDER: Final = "DEMO-0001"
# The demo order's delivery window opens a little later today (a window must lie ahead).
_WINDOW_START: Final = timedelta(hours=2)
_WINDOW_LENGTH: Final = timedelta(hours=4)


@dataclass
class DemoHub:
    """A running demo hub, the kiosk key it minted, and the SMS relay thread."""

    hub: EmbeddedHub
    kiosk_key: str
    sms_path: Path
    _stop: threading.Event = field(default_factory=threading.Event)

    def start_sms_relay(self) -> DemoHub:
        """Copy every SMS the hub queues from now on into ``sms_path`` (number masked)."""
        with Session(self.hub.engine) as session:
            last_id = session.exec(select(func.max(OutboxMessage.id))).one() or 0
        threading.Thread(target=self._relay, args=(int(last_id),), name="demo-sms",
                         daemon=True).start()
        return self

    def _relay(self, last_id: int) -> None:
        """Poll the outbox and append SMS bodies newer than ``last_id`` to the file."""
        while not self._stop.wait(SMS_POLL_S):
            with Session(self.hub.engine) as session:
                rows = session.exec(
                    select(OutboxMessage)
                    .where(OutboxMessage.channel == "sms", col(OutboxMessage.id) > last_id)
                    .order_by(col(OutboxMessage.id))
                ).all()
            with self.sms_path.open("a", encoding="utf-8") as out:
                for row in rows:
                    last_id = int(row.id or last_id)
                    number = self.hub.crypto.decrypt(row.recipient_enc)
                    out.write(f"…{number[-SHOWN_DIGITS:]}: {row.body}\n")

    def stop(self) -> None:
        """Stop the relay and the hub."""
        self._stop.set()
        self.hub.stop()


def seed_pickup_order(hub: EmbeddedHub, store_id: str) -> str | None:
    """Give the demo phone's customer a SIM order ready at ``store_id``; its id, or None.

    The order goes through OAO as a real one does: placed at the store's address,
    dispatched (nearest open store; redirected here by ops if that is another one, as
    after closing time), accepted by the store's staff.
    """
    phone = sign_in_phone(hub, DEMO_PHONE, "demo-phone")
    customer_id = phone.get("/v1/me").json()["id"]
    phone.close()
    start = hub.clock.now() + _WINDOW_START
    with hub.client() as admin:
        store = admin.get(f"/v1/stores/{store_id}").json()
        order = admin.post("/v1/orders", json={
            "client_order_key": DEMO_ORDER, "channel": "app", "product": "sim_card",
            "region_id": store["region_id"], "customer_id": customer_id,
            "address": store["name"], "latitude": store["latitude"],
            "longitude": store["longitude"], "window_start": start.isoformat(),
            "window_end": (start + _WINDOW_LENGTH).isoformat(),
        }).json()
        if order.get("store_id") != store_id and "id" in order:
            # Dispatch sends it to an open store near the address; after this store's
            # closing time that is another one (or none: escalated). Ops hand it here.
            order = admin.post(f"/v1/orders/{order['id']}/redirect", json={
                "store_id": store_id, "reason": "demo pickup at this kiosk's store",
            }).json()
    if order.get("store_id") != store_id:
        log.info("the demo order could not be placed at %s; no pickup to try here", store_id)
        return None
    with hub.client(hub.api_key(Role.STORE_STAFF, store_id=store_id, name="demo-staff")) as staff:
        if not staff.post(f"/v1/orders/{order['id']}/accept").is_success:
            return None
    return str(order["id"])


def start_demo_hub(data_dir: Path, store_id: str, clock: Clock | None = None) -> DemoHub:
    """Start a seeded hub in ``data_dir`` with a kiosk key for ``store_id`` and a demo order.

    The demo runs on the real clock; tests pass a ``clock`` to pin the hour it starts at.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    hub = start_embedded_hub(data_dir, clock=clock or SystemClock())
    key = hub.api_key(Role.KIOSK, store_id=store_id, name="demo-kiosk")
    sms = data_dir / SMS_FILE
    sms.touch()
    seed_pickup_order(hub, store_id)
    return DemoHub(hub, key, sms).start_sms_relay()
