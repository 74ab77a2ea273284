"""Kiosk rules on both backends: clerks calling the next ticket at once never share one."""

from __future__ import annotations

import threading

from sqlalchemy import Engine
from sqlmodel import Session, select

from hub.clock import ManualClock
from hub.models.kiosk import QueueTicket
from hub.models.registry import Store
from hub.services import kiosk
from tests.hub.factories import seed

CLERKS = 12
STORE = "fz-gulou"


def test_clerks_calling_at_once_each_get_their_own_ticket(
    engine: Engine, clock: ManualClock
) -> None:
    """Twelve tickets, twelve clerks pressing "next" together: twelve numbers, none twice."""
    seed(engine, clock)
    with Session(engine) as session:
        store = session.get(Store, STORE)
        assert store is not None
        for _ in range(CLERKS):
            kiosk.take_ticket(session, store, None, clock.now())
        session.commit()
    start = threading.Barrier(CLERKS)
    called: list[int | None] = []
    errors: list[BaseException] = []

    def clerk() -> None:
        try:
            start.wait()  # before any statement: on SQLite the first one takes the write lock
            with Session(engine) as session:
                store = session.get(Store, STORE)
                assert store is not None
                got = kiosk.call_next(session, store, clock.now())
                session.commit()
            called.append(got.number)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=clerk) for _ in range(CLERKS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(n for n in called if n is not None) == list(range(1, CLERKS + 1))
    with Session(engine) as session:
        waiting = session.exec(
            select(QueueTicket).where(QueueTicket.store_id == STORE,
                                      QueueTicket.called_at == None)  # noqa: E711
        ).all()
        store = session.get(Store, STORE)
        assert store is not None
        assert waiting == [] and kiosk.call_next(session, store, clock.now()).number is None
