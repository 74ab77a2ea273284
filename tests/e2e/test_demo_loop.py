"""The whole loop, short: hub + broker + beacon devices + edge node + walking phones."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select
from sqlmodel import Session

from hub.db import make_engine
from hub.models.checkins import Presence, Visit
from hub.mqtt.models import DeadLetter, MqttEvent
from storewave.demo import COUNTER_NODE, DEMO_STORE, demo_phone_number, run_demo
from storewave.logs import setup_logging


def _count(session: Session, model: type, *where: object) -> int:
    return int(session.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def test_demo_loop_end_to_end(tmp_path: Path, mosquitto_bin: str) -> None:
    logs = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    setup_logging("DEBUG", "json", stream=logs)
    try:
        report = run_demo(tmp_path, phones=2, minutes=1.0, seed=7, console=Console(quiet=True))
    finally:
        # Put pytest's own handlers back (a handler bound to this test's captured stderr
        # would outlive it and fail on a closed file).
        root.handlers[:], level = saved
        root.setLevel(level)

    # Every phone walked in, heard beacons through the room and checked in.
    assert report.visits == 2
    assert report.checkins_sent > 0
    assert report.checkins_accepted == report.checkins_sent, report.refusals
    # One visit per phone per walk-in, however many zones it passed.
    assert report.new_visits == 2
    assert report.token_presence_s is not None
    # The first-visit campaign gave each phone one coupon, each redeemed once at the kiosk.
    assert report.grants == 2
    assert report.coupons_redeemed == 2
    # A month of ARC trial on a moved clock: one converter, one who left on price; the
    # converter's queued reminders were cancelled, the rest went out once.
    assert (report.trials_started, report.trials_converted) == (2, 1)
    sent = sum(n for k, n in report.trial_messages.items() if k.endswith(" sent"))
    cancelled = sum(n for k, n in report.trial_messages.items() if k.endswith(" cancelled"))
    assert sent >= 4 and cancelled >= 1, report.trial_messages
    assert (tmp_path / "arc_funnel.png").stat().st_size > 1000
    # The online order went to an open store nearby, which accepted it.
    assert report.order_store == DEMO_STORE
    assert report.order_status == "accepted"

    engine = make_engine(f"sqlite:///{tmp_path / 'hub' / 'hub.sqlite3'}")
    with Session(engine) as session:
        assert _count(session, Visit, Visit.store_id == DEMO_STORE) == 2
        assert _count(session, Presence, Presence.store_id == DEMO_STORE) == 1
        # The counter node's token detection arrived over MQTT once, and nothing was
        # malformed along the way.
        assert _count(session, MqttEvent, MqttEvent.node == COUNTER_NODE) >= 1
        assert _count(session, DeadLetter) == 0
    engine.dispose()

    # No PII in logs: the phone numbers the run used appear nowhere in what it logged,
    # with or without the country code.
    written = logs.getvalue()
    assert written.count("\n") > 20  # the run did log (DEBUG, every part)
    for index in range(2):
        number = demo_phone_number(7, index)
        assert number not in written
        assert number.removeprefix("+86") not in written
