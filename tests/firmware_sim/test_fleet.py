"""The fleet simulator's counts against a real Mosquitto and a tiny acker playing the hub."""

from __future__ import annotations

import json

import pytest

from firmware_sim import fleet
from storewave import wire

from .conftest import HubSide, Mosquitto, wait_for

pytestmark = pytest.mark.mosquitto


def test_counts_match_what_the_hub_saw_and_acked(broker: Mosquitto, hub_side: HubSide) -> None:
    opts = fleet.FleetOptions(
        broker.url,
        nodes=6,
        stores=2,
        rate=20.0,
        duration_s=1.0,
        grace_s=5.0,
        telemetry_share=0.2,
        seed=7,
    )
    counts = fleet.run_fleet(opts)
    assert counts.nodes == counts.connected == 6
    assert 60 <= counts.sent <= 200  # 6 nodes x 20/s x 1 s, Poisson
    assert counts.failed == 0
    assert counts.acked == counts.sent
    assert counts.puback == counts.sent
    wait_for(
        lambda: (
            len(hub_side.of_type("detection")) + len(hub_side.of_type("telemetry")) >= counts.sent
        ),
        5,
        "hub to see everything",
    )
    keys = set()
    for topic, payload in hub_side.seen:
        if topic.endswith(("/events", "/telemetry")):
            event = wire.parse_event(payload, topic_node=topic.split("/")[3])
            keys.add((event.node, event.boot, event.seq))
    assert len(keys) == counts.sent  # every (node, boot, seq) unique, none missing
    stores = {node.split("-n")[0] for node, _, _ in keys}
    assert stores == {"store-0001", "store-0002"}


def test_same_seed_same_traffic_and_message_budget_is_a_hard_bound(
    broker: Mosquitto, hub_side: HubSide
) -> None:
    opts = fleet.FleetOptions(
        broker.url, nodes=3, rate=50.0, duration_s=2.0, max_messages=25, grace_s=3.0
    )
    counts = fleet.run_fleet(opts)
    assert counts.sent == 25 and counts.acked == 25


def test_without_a_hub_nothing_is_acked_but_the_broker_took_it(broker: Mosquitto) -> None:
    opts = fleet.FleetOptions(broker.url, nodes=2, rate=10.0, duration_s=0.5, grace_s=0.5)
    counts = fleet.run_fleet(opts)
    assert counts.sent > 0 and counts.acked == 0
    assert counts.puback == counts.sent and counts.unacked == counts.sent


def test_two_processes_add_up(broker: Mosquitto, hub_side: HubSide) -> None:
    opts = fleet.FleetOptions(
        broker.url, nodes=4, stores=2, rate=10.0, duration_s=1.0, grace_s=5.0, procs=2
    )
    counts = fleet.run_fleet(opts)
    assert counts.nodes == 4 and counts.failed == 0 and counts.acked == counts.sent > 0


@pytest.mark.parametrize(
    "bad",
    [
        {"nodes": 0},
        {"nodes": 10**6},
        {"duration_s": 0},
        {"duration_s": 1e9},
        {"rate": 0},
        {"stores": 5, "nodes": 2},
        {"max_messages": 0},
    ],
)
def test_unbounded_or_impossible_runs_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        fleet.FleetOptions("mqtt://127.0.0.1:1", **bad)  # type: ignore[arg-type]


def test_unreachable_broker_is_a_clear_error() -> None:
    with pytest.raises(ConnectionError, match="cannot reach the broker"):
        fleet.run_fleet(fleet.FleetOptions("mqtt://127.0.0.1:1", nodes=1, stores=1, duration_s=0.1))
    with pytest.raises(ValueError, match="mqtt://"):
        fleet.FleetOptions("http://example.com")
    assert json.dumps(fleet.node_ids(3, 2)) == '["store-0001-n1", "store-0002-n1", "store-0001-n2"]'


def test_broker_loss_mid_run_counts_every_message_once(broker: Mosquitto) -> None:
    import threading

    opts = fleet.FleetOptions(
        broker.url, nodes=3, stores=1, rate=20.0, duration_s=2.0, grace_s=0.5, telemetry_share=0.0
    )
    killer = threading.Timer(0.8, broker.stop)
    killer.start()
    try:
        counts = fleet.run_fleet(opts)
    finally:
        killer.join()
    assert counts.failed > 0 and counts.puback > 0
    assert counts.puback + counts.failed == counts.sent  # each one taken or failed, never both


def test_nodes_reconnect_when_the_broker_comes_back(broker: Mosquitto, hub_side: HubSide) -> None:
    import threading

    opts = fleet.FleetOptions(
        broker.url, nodes=2, stores=1, rate=20.0, duration_s=3.5, grace_s=3.0, telemetry_share=0.0
    )
    seen_before_stop: list[int] = []

    def stop() -> None:
        seen_before_stop.append(len(hub_side.seen))
        broker.stop()

    down = threading.Timer(0.7, stop)
    up = threading.Timer(1.4, broker.start)
    down.start()
    up.start()
    try:
        counts = fleet.run_fleet(opts)
    finally:
        down.join()
        up.join()
    assert counts.failed > 0  # due while the broker was away
    assert counts.puback + counts.failed == counts.sent
    late = {
        json.loads(payload)["node"]
        for topic, payload in hub_side.seen[seen_before_stop[0] :]
        if topic.endswith("/events")
    }
    assert late == set(fleet.node_ids(2, 1)), "not every node published after the restart"
    for node in fleet.node_ids(2, 1):
        births = [s for s in hub_side.statuses(node) if s["state"] == "online"]
        assert len(births) >= 2, f"{node} did not come back: {births}"


def test_a_second_run_of_the_same_boot_continues_every_nodes_seqs(
    broker: Mosquitto, hub_side: HubSide
) -> None:
    def run(first_seqs: dict[str, int]) -> fleet.FleetCounts:
        return fleet.run_fleet(fleet.FleetOptions(
            broker.url, nodes=4, stores=2, rate=20.0, duration_s=0.5, grace_s=5.0, seed=11,
            first_seqs=first_seqs,
        ))  # fmt: skip

    def seqs() -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for topic, payload in hub_side.seen:
            if topic.endswith(("/events", "/telemetry")):
                event = wire.parse_event(payload, topic_node=topic.split("/")[3])
                out.setdefault(event.node, []).append(event.seq)
        return out

    first = run({})
    wait_for(lambda: sum(map(len, seqs().values())) >= first.sent, 5, "the first run")
    after = {node: max(s) + 1 for node, s in seqs().items()}
    second = run(after)
    assert second.failed == 0 and second.acked == second.sent > 0  # acks cover the new seqs
    wait_for(lambda: sum(map(len, seqs().values())) >= first.sent + second.sent, 5, "both")
    for node, got in seqs().items():
        assert sorted(got) == list(range(len(got))), node  # one gap-free stream per node
