"""Debouncing: first hearing at once, repeats folded, one closing event with the count."""

from __future__ import annotations

from datetime import UTC, datetime

from edge.agent.debounce import Debouncer

T0 = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)


def test_first_hearing_goes_out_at_once_and_repeats_fold_into_one_count() -> None:
    d = Debouncer(window_s=10.0)
    first = d.hear(0xABC, 10.0, 0.8, now=0.0, heard_at=T0)
    assert first is not None and first.count == 1
    assert d.hear(0xABC, 14.0, 0.7, now=3.0, heard_at=T0) is None
    assert d.hear(0xABC, 12.0, 0.9, now=9.9, heard_at=T0) is None
    assert d.expire(9.99) == []
    (closing,) = d.expire(10.0)
    assert (closing.count, closing.snr_db, closing.confidence) == (3, 14.0, 0.9)
    assert closing.first_heard == T0


def test_a_code_heard_once_has_no_closing_event_and_other_codes_are_separate() -> None:
    d = Debouncer(window_s=5.0)
    assert d.hear(1, 10.0, 0.8, 0.0, T0) is not None
    assert d.hear(2, 10.0, 0.8, 1.0, T0) is not None
    assert d.next_deadline() == 5.0
    assert d.expire(100.0) == []
    assert d.hear(1, 10.0, 0.8, 100.0, T0) is not None  # a new window


def test_zero_window_reports_every_hearing_and_flush_closes_all() -> None:
    d = Debouncer(window_s=0.0)
    assert all(d.hear(7, 1.0, 0.5, t, T0) is not None for t in (0.0, 0.1, 0.2))
    d.window_s = 60.0
    d.hear(8, 1.0, 0.5, 0.0, T0)
    d.hear(8, 1.0, 0.5, 1.0, T0)
    assert [h.count for h in d.flush()] == [2]
