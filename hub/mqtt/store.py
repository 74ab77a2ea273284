"""One ingest batch, one transaction: validate, store each (node, boot, seq) once, dead-letter.

Kept apart from the MQTT plumbing so it is tested on a database alone. The caller
acknowledges to the broker only after :meth:`BatchWriter.write` returned (committed).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from hub.mqtt import metrics
from hub.mqtt.bulk import insert_events, upsert_cursors
from hub.mqtt.cursors import CursorCache, GapReport
from hub.mqtt.hooks import NodeHooks
from hub.mqtt.models import (
    MAX_DEAD_PAYLOAD_CHARS,
    MAX_DEAD_TOPIC_CHARS,
    MAX_REASON_CHARS,
    DeadLetter,
    MqttCursor,
    MqttEvent,
    MqttSeqGap,
)
from storewave.wire import (
    NodeLeaf,
    NodeStatus,
    WireError,
    parse_event,
    parse_message,
    parse_node_topic,
)

log = logging.getLogger(__name__)

_EVENT = MqttEvent.__table__  # type: ignore[attr-defined]
_CURSOR = MqttCursor.__table__  # type: ignore[attr-defined]
_GAP = MqttSeqGap.__table__  # type: ignore[attr-defined]
_DEAD = DeadLetter.__table__  # type: ignore[attr-defined]
_KEY = ("node", "boot", "seq")
# Deadlock detected / serialization failure: the database rolled the batch back whole.
_LOCK_CONFLICT_STATES = frozenset({"40P01", "40001"})
LOCK_CONFLICT_ATTEMPTS = 5


@dataclass(frozen=True)
class Incoming:
    """A message as received: where it came from, its bytes, and when."""

    topic: str
    payload: bytes
    received_at: datetime
    retained: bool = False


@dataclass
class BatchResult:
    """What a committed batch did; ``acks`` maps (node, boot) to the seq to acknowledge."""

    stored: int = 0
    duplicates: int = 0
    statuses: int = 0
    dead: int = 0
    acks: dict[tuple[str, int], int] = field(default_factory=dict)
    gaps: list[GapReport] = field(default_factory=list)


@dataclass
class _Parsed:
    """A batch split into what to store, what to apply, and what to refuse."""

    events: list[tuple[Any, datetime]] = field(default_factory=list)
    statuses: list[tuple[str, NodeStatus, datetime]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)


def _dead_row(msg: Incoming, reason: str, node: str | None = None) -> dict[str, Any]:
    """A dead_letter row with topic, reason and payload cut to their column sizes."""
    return {
        "topic": msg.topic[:MAX_DEAD_TOPIC_CHARS],
        "node": node,
        "reason": reason[:MAX_REASON_CHARS],
        "payload": msg.payload[:MAX_DEAD_PAYLOAD_CHARS].decode("utf-8", errors="replace"),
        "received_at": msg.received_at,
    }


def _insert(engine_or_session: Any) -> Any:
    """The dialect's INSERT construct (for ON CONFLICT), SQLite or PostgreSQL."""
    name = engine_or_session.get_bind().dialect.name
    return (postgresql if name == "postgresql" else sqlite).insert


def parse_batch(messages: Sequence[Incoming]) -> _Parsed:
    """Validate each message against the wire schema and its topic; no database access."""
    parsed = _Parsed()
    for msg in messages:
        node: str | None = None
        try:
            node, leaf = parse_node_topic(msg.topic)
            if leaf in (NodeLeaf.EVENTS, NodeLeaf.TELEMETRY):
                event = parse_event(msg.payload, topic_node=node)
                if (leaf == NodeLeaf.TELEMETRY) != (event.type == "telemetry"):
                    raise WireError(f"event type {event.type!r} not allowed on {leaf.value} topic")
                parsed.events.append((event, msg.received_at))
            elif leaf == NodeLeaf.STATUS:
                if not msg.payload:
                    continue  # a cleared retained status (node deleted): nothing to apply
                status = parse_message(NodeStatus, msg.payload)
                parsed.statuses.append((node, status, msg.received_at))
            else:
                raise WireError(f"hub does not accept messages on {leaf.value} topics")
        except WireError as exc:
            parsed.dead.append(_dead_row(msg, exc.reason, node))
    return parsed


class BatchWriter:
    """Writes batches for one ingest worker; keeps the per-(node, boot) ack cursors."""

    def __init__(self, engine: Engine, hooks: NodeHooks) -> None:
        """Bind the database and the registry hooks."""
        self.engine = engine
        self.hooks = hooks
        self.cursors = CursorCache()

    def write(self, messages: Sequence[Incoming]) -> BatchResult:
        """Store a batch in one transaction; fall back to one message at a time on errors.

        Database outages (OperationalError) propagate so the caller retries without
        acknowledging; any other failure isolates the offending message into the
        dead-letter table so it cannot block the others (no poison loop).
        """
        parsed = parse_batch(messages)
        try:
            return self._commit_retrying_conflicts(parsed)
        except OperationalError:
            raise
        except DBAPIError:
            log.exception("batch failed in the database; retrying message by message")
        except Exception:
            log.exception("batch failed while applying; retrying message by message")
        self.cursors.clear()
        total = BatchResult()
        for msg in messages:
            total = _merge(total, self._write_one(msg))
        return total

    def _commit_retrying_conflicts(self, parsed: _Parsed) -> BatchResult:
        """:meth:`_commit`, re-run at once when the database aborted it for a lock conflict.

        Two ingest workers sharing a subscription touch the same nodes' (and customers')
        rows in the order their messages came, so PostgreSQL may abort one of them as a
        deadlock (or a serialization failure). That is not an outage: the transaction
        rolled back whole, so running it again is safe and needs no back-off.
        """
        for attempt in range(1, LOCK_CONFLICT_ATTEMPTS + 1):
            try:
                return self._commit(parsed)
            except OperationalError as exc:
                state = getattr(exc.orig, "sqlstate", None)
                if state not in _LOCK_CONFLICT_STATES or attempt == LOCK_CONFLICT_ATTEMPTS:
                    raise
                self.cursors.clear()
                log.warning(
                    "ingest batch rolled back by a lock conflict (SQLSTATE %s); re-running it"
                    " (attempt %d of %d)", state, attempt + 1, LOCK_CONFLICT_ATTEMPTS,
                )
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _write_one(self, msg: Incoming) -> BatchResult:
        """One message in its own transaction; if applying it fails, store + dead-letter it."""
        parsed = parse_batch([msg])
        try:
            return self._commit(parsed)
        except OperationalError:
            raise
        except Exception as exc:  # the registry hook or a constraint refused this message
            self.cursors.clear()
            reason = f"failed to apply: {type(exc).__name__}"
            log.warning("message dead-lettered: %s", reason, extra={"topic": msg.topic[:120]})
            node = parsed.events[0][0].node if parsed.events else None
            parsed.dead.append(_dead_row(msg, reason, node))
            return self._commit(parsed, apply=False)

    def _commit(self, parsed: _Parsed, apply: bool = True) -> BatchResult:
        """Insert, apply and advance cursors in one transaction, then commit."""
        result = BatchResult()
        with Session(self.engine, expire_on_commit=False) as session:
            self._refuse_unknown(session, parsed)
            insert = _insert(session)
            rows = _dedupe([_event_row(ev, at) for ev, at in parsed.events])
            new_keys: set[tuple[str, int, int]] = set()
            if rows:
                new_keys = insert_events(session, rows)
            for event, received_at in parsed.events:
                key = (event.node, event.boot, event.seq)
                if key in new_keys:
                    new_keys.discard(key)  # apply once even if the batch held it twice
                    result.stored += 1
                    if apply:
                        self.hooks.apply_event(session, event, received_at)
                    metrics.LAG_SECONDS.observe(max(0.0, (received_at - event.ts).total_seconds()))
                else:
                    result.duplicates += 1
            for node, status, received_at in parsed.statuses:
                result.statuses += 1
                if apply:
                    self.hooks.apply_status(session, node, status, received_at)
            if parsed.dead:
                session.execute(insert(_DEAD), parsed.dead)
                result.dead = len(parsed.dead)
            plan = self.cursors.plan(session, [(r["node"], r["boot"], r["seq"]) for r in rows])
            self._save_cursors(session, plan.contiguous, plan.gaps, plan.closed)
            session.commit()
        self.cursors.apply(plan)
        result.acks = plan.contiguous
        result.gaps = plan.gaps
        return result

    def _refuse_unknown(self, session: Session, parsed: _Parsed) -> None:
        """Move events/statuses of nodes the registry does not know to the dead letters."""
        nodes = {ev.node for ev, _ in parsed.events} | {n for n, _, _ in parsed.statuses}
        if not nodes:
            return
        unknown = nodes - self.hooks.known_nodes(session, nodes)
        if not unknown:
            return
        kept = []
        for ev, at in parsed.events:
            if ev.node in unknown:
                parsed.dead.append(_dead_unknown(ev.node, "events", ev.model_dump_json(), at))
            else:
                kept.append((ev, at))
        parsed.events = kept
        statuses = []
        for node, status, at in parsed.statuses:
            if node in unknown:
                parsed.dead.append(_dead_unknown(node, "status", status.model_dump_json(), at))
            else:
                statuses.append((node, status, at))
        parsed.statuses = statuses

    def _save_cursors(
        self,
        session: Session,
        contiguous: dict[tuple[str, int], int],
        gaps: list[GapReport],
        closed: list[tuple[str, int, int]],
    ) -> None:
        """Upsert cursors (never moving back), record new gaps, close filled ones."""
        if not contiguous:
            return
        insert = _insert(session)
        now = self.cursors.clock()
        rows = [
            {"node": n, "boot": b, "contiguous_seq": s, "updated_at": now}
            for (n, b), s in contiguous.items()
        ]
        upsert_cursors(session, rows)
        if gaps:
            session.execute(
                insert(_GAP).on_conflict_do_nothing(
                    index_elements=["node", "boot", "first_missing"]
                ),
                [g.row() for g in gaps],
            )
        for node, boot, upto in closed:
            session.execute(
                update(_GAP)
                .where(_GAP.c.node == node, _GAP.c.boot == boot, _GAP.c.first_missing <= upto,
                       _GAP.c.closed_at.is_(None))
                .values(closed_at=now)
            )


def _dead_unknown(node: str, leaf: str, payload: str, at: datetime) -> dict[str, Any]:
    """A dead letter for a message from a node the registry does not know."""
    msg = Incoming(topic=f"sw/v1/nodes/{node}/{leaf}", payload=payload.encode(), received_at=at)
    return _dead_row(msg, f"unknown node {node!r}", node)


def _event_row(event: Any, received_at: datetime) -> dict[str, Any]:
    """An mqtt_event row for a parsed envelope."""
    return {
        "node": event.node,
        "boot": event.boot,
        "seq": event.seq,
        "event_id": str(event.id),
        "type": event.type,
        "ts": event.ts,
        "received_at": received_at,
        "body": event.body.model_dump(mode="json"),
    }


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the first row per (node, boot, seq): a batch may hold a redelivery of itself."""
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        seen.setdefault((row["node"], row["boot"], row["seq"]), row)
    return list(seen.values())


def _merge(a: BatchResult, b: BatchResult) -> BatchResult:
    """Sum two results (used when a batch is retried message by message)."""
    return BatchResult(
        stored=a.stored + b.stored,
        duplicates=a.duplicates + b.duplicates,
        statuses=a.statuses + b.statuses,
        dead=a.dead + b.dead,
        acks={**a.acks, **b.acks},
        gaps=a.gaps + b.gaps,
    )


def count_events(engine: Engine) -> int:
    """Rows in mqtt_event (for tests and the benchmark's loss check)."""
    from sqlalchemy import func

    with Session(engine) as session:
        return int(session.execute(select(func.count()).select_from(_EVENT)).scalar_one())
