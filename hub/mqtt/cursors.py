"""Highest contiguous committed seq per (node, boot), cached in memory, the database the truth.

The fast path (a node's seqs arriving in order) needs no query. An apparent gap is
re-checked against the database, since another ingest worker sharing the subscription
may have committed the missing seqs; a gap that is still there is reported once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from hub.mqtt.models import MqttCursor, MqttEvent, MqttSeqGap
from storewave.wire import utc_now

_EVENT = MqttEvent.__table__  # type: ignore[attr-defined]
_CURSOR = MqttCursor.__table__  # type: ignore[attr-defined]
_GAP = MqttSeqGap.__table__  # type: ignore[attr-defined]

# Seqs read past the cursor when (re)loading a (node, boot): a node's outbox backlog is
# at most this far ahead in practice; beyond it the cursor simply advances next batch.
LOAD_LIMIT = 10_000
# Cached (node, boot) states before the cache is dropped and rebuilt on demand: ~100
# bytes each, so a fleet of 100k nodes fits in ~10 MB.
MAX_CACHED = 200_000
# Committed seqs above a gap kept per (node, boot); past this the state is reloaded.
MAX_ABOVE = 50_000


@dataclass(frozen=True)
class GapReport:
    """Seqs ``first_missing..last_missing`` of (node, boot) were missing at ``detected_at``."""

    node: str
    boot: int
    first_missing: int
    last_missing: int
    detected_at: datetime

    def row(self) -> dict[str, Any]:
        """As an mqtt_seq_gap row."""
        return {
            "node": self.node,
            "boot": self.boot,
            "first_missing": self.first_missing,
            "last_missing": self.last_missing,
            "detected_at": self.detected_at,
        }


@dataclass
class _State:
    """What is committed for one (node, boot): all seqs <= contiguous, plus ``above``."""

    contiguous: int = -1
    above: set[int] = field(default_factory=set)
    open_gaps: set[int] = field(default_factory=set)

    def copy(self) -> _State:
        """An independent copy (plans must not touch the cache until committed)."""
        return _State(self.contiguous, set(self.above), set(self.open_gaps))

    def advance(self) -> None:
        """Move ``contiguous`` over every seq that now follows it."""
        above = self.above
        while self.contiguous + 1 in above:
            self.contiguous += 1
            above.discard(self.contiguous)
        if above and min(above) <= self.contiguous:  # redeliveries below the cursor
            self.above = {s for s in above if s > self.contiguous}


@dataclass
class CursorPlan:
    """Cursor changes a batch makes, applied to the cache only after the commit."""

    states: dict[tuple[str, int], _State] = field(default_factory=dict)
    gaps: list[GapReport] = field(default_factory=list)
    closed: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def contiguous(self) -> dict[tuple[str, int], int]:
        """(node, boot) -> highest contiguous committed seq."""
        return {key: state.contiguous for key, state in self.states.items()}


class CursorCache:
    """Per-worker cache of committed seqs; see the module docstring."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        """Start empty; ``clock`` stamps gap records."""
        self.clock = clock
        self._states: dict[tuple[str, int], _State] = {}

    def clear(self) -> None:
        """Forget everything (after a rollback the cache may be ahead of the database)."""
        self._states.clear()

    def plan(self, session: Session, committed: Iterable[tuple[str, int, int]]) -> CursorPlan:
        """Cursors after ``committed`` keys (in this transaction) are in the database."""
        by_key: dict[tuple[str, int], set[int]] = {}
        for node, boot, seq in committed:
            by_key.setdefault((node, boot), set()).add(seq)
        cold = self._load_cursors(session, [k for k in by_key if k not in self._states])
        plan = CursorPlan()
        for key, seqs in by_key.items():
            cached = self._states.get(key)
            state = cached.copy() if cached else cold[key]
            state.above |= seqs
            state.advance()
            if state.above:  # an apparent gap: the database (other workers) may fill it
                state = self._load(session, key, state.open_gaps)
            if state.above:
                first = state.contiguous + 1
                if first not in state.open_gaps:
                    state.open_gaps.add(first)
                    plan.gaps.append(
                        GapReport(key[0], key[1], first, min(state.above) - 1, self.clock())
                    )
            filled = {g for g in state.open_gaps if g <= state.contiguous}
            if filled:
                state.open_gaps -= filled
                plan.closed.append((key[0], key[1], state.contiguous))
            plan.states[key] = state
        return plan

    def _load_cursors(
        self, session: Session, keys: list[tuple[str, int]]
    ) -> dict[tuple[str, int], _State]:
        """Cold start for many (node, boot) at once: two queries, not two per key.

        Only the cursor row and open gaps are read; seqs already committed above the
        cursor (rare: a gap) are found by :meth:`_load` when a gap shows.
        """
        states = {key: _State() for key in keys}
        if not keys:
            return states
        nodes = sorted({node for node, _ in keys})
        for node, boot, seq in session.execute(
            select(_CURSOR.c.node, _CURSOR.c.boot, _CURSOR.c.contiguous_seq).where(
                _CURSOR.c.node.in_(nodes)
            )
        ):
            if (node, boot) in states:
                states[(node, boot)].contiguous = int(seq)
        for node, boot, first in session.execute(
            select(_GAP.c.node, _GAP.c.boot, _GAP.c.first_missing).where(
                _GAP.c.node.in_(nodes), _GAP.c.closed_at.is_(None)
            )
        ):
            if (node, boot) in states:
                states[(node, boot)].open_gaps.add(int(first))
        return states

    def apply(self, plan: CursorPlan) -> None:
        """Adopt a committed plan."""
        if len(self._states) + len(plan.states) > MAX_CACHED:
            self._states.clear()
        for key, state in plan.states.items():
            if len(state.above) > MAX_ABOVE:
                self._states.pop(key, None)
            else:
                self._states[key] = state

    def _load(
        self, session: Session, key: tuple[str, int], known_gaps: set[int] | None = None
    ) -> _State:
        """Rebuild one (node, boot) from its cursor row and the events above it."""
        node, boot = key
        stored = session.execute(
            select(_CURSOR.c.contiguous_seq).where(_CURSOR.c.node == node, _CURSOR.c.boot == boot)
        ).scalar_one_or_none()
        state = _State(contiguous=-1 if stored is None else int(stored))
        seqs = session.execute(
            select(_EVENT.c.seq)
            .where(_EVENT.c.node == node, _EVENT.c.boot == boot, _EVENT.c.seq > state.contiguous)
            .order_by(_EVENT.c.seq)
            .limit(LOAD_LIMIT)
        ).scalars()
        state.above = {int(s) for s in seqs}
        if known_gaps is None:
            known_gaps = set(
                session.execute(
                    select(_GAP.c.first_missing).where(
                        _GAP.c.node == node, _GAP.c.boot == boot, _GAP.c.closed_at.is_(None)
                    )
                ).scalars()
            )
        state.open_gaps = set(known_gaps)
        state.advance()
        return state
