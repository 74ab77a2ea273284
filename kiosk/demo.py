"""``storewave kiosk --demo DIR``: a seeded hub in this process, its SMS codes in a file."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sqlmodel import Session, col, select

from hub.clock import SystemClock
from hub.embedded import EmbeddedHub, start_embedded_hub
from hub.models.auth import Role
from hub.models.customers import OutboxMessage

log = logging.getLogger(__name__)

# The demo's texted codes land here (there is no SMS gateway in a demo).
SMS_FILE: Final = "sms.txt"
# A tester reads the file within a second of asking for a code.
SMS_POLL_S: Final = 0.5
# Show only the last digits of a number: enough to tell demo phones apart.
SHOWN_DIGITS: Final = 4


@dataclass
class DemoHub:
    """A running demo hub, the kiosk key it minted, and the SMS relay thread."""

    hub: EmbeddedHub
    kiosk_key: str
    sms_path: Path
    _stop: threading.Event = field(default_factory=threading.Event)

    def start_sms_relay(self) -> DemoHub:
        """Copy every new SMS the hub queues into ``sms_path`` (number masked)."""
        threading.Thread(target=self._relay, name="demo-sms", daemon=True).start()
        return self

    def _relay(self) -> None:
        """Poll the outbox and append new SMS bodies to the file."""
        last_id = 0
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


def start_demo_hub(data_dir: Path, store_id: str) -> DemoHub:
    """Start a seeded hub in ``data_dir`` with a kiosk key for ``store_id``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    hub = start_embedded_hub(data_dir, clock=SystemClock())
    key = hub.api_key(Role.KIOSK, store_id=store_id, name="demo-kiosk")
    sms = data_dir / SMS_FILE
    sms.touch()
    return DemoHub(hub, key, sms).start_sms_relay()
