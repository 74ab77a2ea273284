"""The publisher's window, order, rate limit and resend rules, over a real outbox."""

from __future__ import annotations

from pathlib import Path

from edge.agent.outbox import EventKind, Outbox
from edge.agent.publisher import Publisher
from storewave.wire import NodeLeaf


class _Link:
    """A link that records publishes and can be cut after a number of them."""

    def __init__(self) -> None:
        self.connected = True
        self.sent: list[tuple[str, bytes, int]] = []
        self.cut_after: int | None = None

    def publish(self, leaf: NodeLeaf, payload: bytes, qos: int, retain: bool = False) -> bool:
        if not self.connected:
            return False
        if self.cut_after is not None and len(self.sent) >= self.cut_after:
            self.connected = False
            return False
        self.sent.append((leaf.value, payload, qos))
        return True


def _box(tmp_path: Path, n: int) -> Outbox:
    box = Outbox(tmp_path / "o.sqlite3", 1000, 2000)
    for i in range(n):
        envelope = f'{{"v":1,"boot":0,"seq":0,"i":{i}}}'.encode()
        box.add(envelope, EventKind.DETECTION, "events")
    return box


def _seqs(link: _Link) -> list[int]:
    import json

    return [json.loads(p)["seq"] for _, p, _ in link.sent]


def test_rate_limit_bounds_each_step_and_order_is_kept(tmp_path: Path) -> None:
    link = _Link()
    pub = Publisher(_box(tmp_path, 50), link, rate_per_s=100.0, window=1000, ack_timeout_s=5.0)
    pub.step(0.0)
    assert _seqs(link) == list(range(10))  # the 0.1 s burst
    pub.step(0.05)  # 50 ms later: 5 more tokens
    assert _seqs(link) == list(range(15))
    pub.step(4.0)  # a long pause refills only up to the burst, never a flood
    assert _seqs(link) == list(range(25))
    assert all(qos == 1 for _, _, qos in link.sent)


def test_a_link_cut_mid_batch_leaves_no_gap_after_reconnect(tmp_path: Path) -> None:
    link = _Link()
    box = _box(tmp_path, 5)
    pub = Publisher(box, link, rate_per_s=1000.0, window=1000, ack_timeout_s=5.0)
    link.cut_after = 2
    pub.step(0.0)
    assert _seqs(link) == [0, 1] and pub.in_flight == 5
    link.connected, link.cut_after = True, None
    pub.on_connected()
    pub.step(1.0)
    assert _seqs(link)[2:] == [0, 1, 2, 3, 4]  # everything again, same seqs, in order
    assert pub.on_ack(box.boot, 4) == 5 and box.depth == 0


def test_window_full_waits_for_acks_and_unacked_are_resent_after_the_timeout(
    tmp_path: Path,
) -> None:
    link = _Link()
    box = _box(tmp_path, 6)
    pub = Publisher(box, link, rate_per_s=1000.0, window=4, ack_timeout_s=2.0)
    pub.step(0.0)
    assert _seqs(link) == [0, 1, 2, 3]
    pub.step(1.0)
    assert len(link.sent) == 4  # window full, nothing due yet
    pub.on_ack(box.boot, 1)
    pub.step(1.1)
    assert _seqs(link)[4:] == [4, 5]
    pub.step(2.5)  # seq 2 and 3 were sent at t=0: due again
    assert _seqs(link)[6:] == [2, 3]
    assert pub.resent == 2
