"""``storewave demo``: the whole StoreWave loop on embedded defaults, with a live view.

A hub with its managed broker and SQLite starts in this process and loads the seeds;
the store's beacon devices boot, get their rotating-code keys over MQTT and emit;
customers' phones walk in, hear the beacons through the acoustic simulator, decode
them with the real detector and check in over HTTP; a phone plays its token at the
counter, where a real edge node hears it and reports it over MQTT. It ends with a
report table and files in the folder it names.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from storewave.logs import setup_logging

DEMO_STORE = "fz-gulou"
# The counter node runs the real edge agent (it hears phone tokens); the others are
# simulated beacon devices.
COUNTER_NODE = "fz-gulou-n4"
STORE_TZ = ZoneInfo("Asia/Shanghai")
# The demo's day starts at 10:30 in the store (open), so check-ins pass the hours rule.
DEMO_LOCAL_START = (10, 30)
DEFAULT_PHONES = 6
DEFAULT_MINUTES = 4.0
# Seconds between hearing a code and the hub receiving the check-in (app + network).
CHECKIN_LATENCY_S = 1.0
# The ARC stage: a month-long trial of this catalogue service on a moved clock, with a
# rating on the day the care SMS asks for it and a conversion before expiry.
ARC_SERVICE = "video-pack"
ARC_DAYS = 31
ARC_RATING_DAY = 15
ARC_CONVERT_DAY = 27
# Back-office charts the demo saves (file, endpoint, query).
REPORT_CHARTS = (
    ("visits.png", "/v1/analytics/visits", {"format": "png", "store_id": DEMO_STORE}),
    ("movement.png", "/v1/analytics/paths", {"format": "png", "store_id": DEMO_STORE}),
    ("visits.csv", "/v1/analytics/visits", {"format": "csv", "store_id": DEMO_STORE}),
    ("orders.png", "/v1/oao/reports/orders", {"fmt": "png", "group": "store"}),
)
# An edge node reports a heard token within a second; the bound is for a loaded CI box.
PRESENCE_TIMEOUT_S = 30.0


@dataclass
class DemoReport:
    """What the demo did, for the printed report and ``report.json``."""

    started: str = ""
    workdir: str = ""
    phones: int = 0
    visits: int = 0
    zones_per_visit: float = 0.0
    checkins_sent: int = 0
    checkins_accepted: int = 0
    new_visits: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    grants: int = 0
    token_presence_s: float | None = None
    campaign: str | None = None
    coupons_redeemed: int = 0
    trials_started: int = 0
    trials_converted: int = 0
    trial_messages: dict[str, int] = field(default_factory=dict)
    charts: list[str] = field(default_factory=list)
    order_store: str | None = None
    order_status: str | None = None
    order_candidates: int = 0
    wall_s: float = 0.0

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) rows for the summary table."""
        return [
            ("phones walked in", str(self.phones)),
            ("visits simulated (audio rendered + decoded)", str(self.visits)),
            ("zones heard per visit", f"{self.zones_per_visit:.1f}"),
            ("check-ins sent / accepted", f"{self.checkins_sent} / {self.checkins_accepted}"),
            ("new visits recorded", str(self.new_visits)),
            ("refused (reason: count)", ", ".join(f"{k}: {v}" for k, v in self.refusals.items())
             or "none"),
            ("coupons granted by campaign", f"{self.grants} ({self.campaign or '-'})"),
            ("coupons redeemed at the kiosk", str(self.coupons_redeemed)),
            ("token heard at counter -> presence (s)",
             "-" if self.token_presence_s is None else f"{self.token_presence_s:.2f}"),
            ("OAO order dispatched to / status",
             f"{self.order_store or '-'} / {self.order_status or '-'}"),
            ("stores the dispatcher weighed", str(self.order_candidates)),
            ("ARC trials started / converted (31 days on a moved clock)",
             f"{self.trials_started} / {self.trials_converted}"),
            ("ARC messages by channel and state",
             ", ".join(f"{k}: {v}" for k, v in sorted(self.trial_messages.items())) or "none"),
            ("charts and tables written", ", ".join(self.charts) or "none"),
            ("wall time (s)", f"{self.wall_s:.1f}"),
        ]


def demo_phone_number(seed: int, index: int) -> str:
    """The (fictional) mobile number of the demo's ``index``-th phone."""
    return f"+86138{seed % 1000:03d}{index:05d}"


def demo_start_time(now: datetime | None = None) -> datetime:
    """The next 10:30 in the store's time zone at or after ``now`` (stores are open then)."""
    now = now or datetime.now(UTC)
    local = now.astimezone(STORE_TZ)
    start = local.replace(hour=DEMO_LOCAL_START[0], minute=DEMO_LOCAL_START[1], second=0,
                          microsecond=0)
    if start < local:
        start += timedelta(days=1)
    # Sunday hours start later in the seeds; Monday-Saturday all open by 10:00.
    while start.weekday() == 6:
        start += timedelta(days=1)
    return start.astimezone(UTC)


def run_demo(workdir: Path, phones: int, minutes: float, seed: int, console: Console) -> DemoReport:
    """Run the loop; raise DemoError with a plain reason if a step fails."""
    from edge.modem import codes
    from firmware_sim.store import layout_from_seeds
    from firmware_sim.storesim import run_store
    from hub.clock import ManualClock
    from hub.embedded import start_embedded_hub
    from hub.models.auth import Role
    from storewave.demo_world import (
        DemoError,
        LiveMicrophone,
        sign_in_phone,
        start_beacons,
        token_audio,
        wait_for,
    )

    report = DemoReport(started=datetime.now(UTC).isoformat(), workdir=str(workdir),
                        phones=phones)
    t_start = time.monotonic()
    clock = ManualClock(demo_start_time())
    layout = layout_from_seeds(DEMO_STORE, seed=seed)
    beacon_nodes = [b.node_id for b in layout.beacons if b.node_id != COUNTER_NODE]

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        step = progress.add_task("hub: broker, database, API, seeds", total=1)
        hub = start_embedded_hub(workdir / "hub", clock=clock)
        progress.update(step, completed=1)
        fleet = None
        agent = None
        mic = None
        try:
            step = progress.add_task("beacon devices and edge node get keys over MQTT",
                                     total=1)
            fleet = start_beacons(hub, beacon_nodes)
            mic = LiveMicrophone(np.random.default_rng(seed))
            agent = _start_counter(hub, workdir, mic)
            keys = fleet.wait_configured()
            keys[COUNTER_NODE] = wait_for(
                lambda: agent.config and agent.config.beacon
                and bytes.fromhex(agent.config.beacon.key_hex),
                "the counter edge node's config", PRESENCE_TIMEOUT_S,
            )
            progress.update(step, completed=1)

            report.campaign = _launch_welcome_campaign(hub)
            step = progress.add_task("phones walk in (audio rendered, decoded)", total=phones)
            wall0 = clock.now().timestamp()
            run = run_store(
                DEMO_STORE, phones, minutes, seed, wall0_s=wall0, keys=keys,
                on_visit=lambda _v, _r: progress.advance(step),
            )
            report.visits = len(run.visits)
            report.zones_per_visit = (
                sum(len(v.zones) for v in run.visits) / len(run.visits) if run.visits else 0.0
            )

            entries = sorted(
                ((z.checkin.heard_at, v.phone_id, z) for v in run.visits for z in v.zones),
                key=lambda item: item[0],
            )
            clients = {}
            step = progress.add_task("phones check in, in time order", total=len(entries))
            refusals: Counter[str] = Counter()
            coupon_codes: list[str] = []
            for n, (heard_at, phone_id, zone) in enumerate(entries):
                if phone_id not in clients:
                    number = demo_phone_number(seed, len(clients))
                    clients[phone_id] = sign_in_phone(hub, number, device_id=phone_id)
                target = heard_at + timedelta(seconds=CHECKIN_LATENCY_S)
                if target > clock.now():
                    clock.set(target)
                resp = clients[phone_id].post(
                    "/v1/checkins", content=zone.checkin.model_dump_json(),
                    headers={"Content-Type": "application/json"},
                )
                report.checkins_sent += 1
                if resp.status_code == 200:
                    body = resp.json()
                    report.checkins_accepted += 1
                    report.new_visits += int(body["new_visit"])
                    report.grants += len(body["grants"])
                    coupon_codes += [g["coupon_code"] for g in body["grants"] if g["coupon_code"]]
                else:
                    refusals[resp.json().get("code", str(resp.status_code))] += 1
                progress.update(step, completed=n + 1)
            report.refusals = dict(refusals)

            step = progress.add_task("a phone plays its token at the counter", total=1)
            token_client = next(iter(clients.values()))
            resp = token_client.post("/v1/phone/tokens")
            if resp.status_code != 201:
                raise DemoError(f"token refused: {resp.status_code} {resp.text[:200]}")
            token = codes.from_hex(resp.json()["token"])
            mic.play(token_audio(layout, COUNTER_NODE, token, 3.0, np.random.default_rng(seed)))
            staff = hub.client(hub.api_key(Role.STORE_STAFF, store_id=DEMO_STORE))
            heard_from = time.monotonic()
            customer = token_client.get("/v1/me").json()["id"]
            wait_for(
                lambda: any(p["customer_id"] == customer
                            for p in staff.get(f"/v1/stores/{DEMO_STORE}/presence").json()),
                "the counter node to report the phone's token",
                PRESENCE_TIMEOUT_S,
            )
            report.token_presence_s = time.monotonic() - heard_from
            progress.update(step, completed=1)
            step = progress.add_task("coupons redeemed at the kiosk", total=len(coupon_codes))
            kiosk = hub.client(hub.api_key(Role.KIOSK, store_id=DEMO_STORE))
            for n, code in enumerate(coupon_codes):
                redeemed = kiosk.post("/v1/coupons/redeem", json={
                    "code": code, "store_id": DEMO_STORE, "client_key": f"kiosk-1:{n}",
                    "spend_cents": 9900,
                })
                report.coupons_redeemed += int(redeemed.status_code == 200)
                progress.advance(step)
            kiosk.close()
            step = progress.add_task("an online order is dispatched and accepted", total=1)
            _oao_order(hub, clock, report)
            progress.update(step, completed=1)
            step = progress.add_task("back-office reports and charts", total=len(REPORT_CHARTS))
            # The back office's days are the store's local days (analytics.Period).
            report.charts = _save_charts(hub, clock.now().astimezone(STORE_TZ).date(), workdir,
                                         lambda: progress.advance(step))
            step = progress.add_task("ARC free trials run a month on a moved clock",
                                     total=ARC_DAYS)
            _arc_trials(hub, clock, list(clients.values()), staff, report, workdir,
                        lambda: progress.advance(step))
            for c in clients.values():
                c.close()
            staff.close()
        finally:
            if agent is not None:
                mic.close()
                agent.stop()
            if fleet is not None:
                fleet.stop()
            hub.stop()
    report.wall_s = time.monotonic() - t_start
    return report


def _arc_trials(hub, clock, phones, staff, report: DemoReport, workdir: Path,  # type: ignore[no-untyped-def]
                tick) -> None:
    """Two customers start a free trial; one rates it 5 and converts, one leaves on price."""
    from sqlmodel import Session, func, select

    from hub.models.customers import OutboxMessage
    from hub.models.journeys import OutboxDelivery
    from hub.security import HubCrypto, resolve_secret
    from hub.services.outbox import LogSender, dispatch_due
    from hub.services.timers import run_due
    from storewave.demo_world import DemoError

    crypto, sender = HubCrypto(resolve_secret(hub.settings)), LogSender()
    trials = []
    for n, phone in enumerate(phones[:2]):
        customer = phone.get("/v1/me").json()["id"]
        resp = staff.post("/v1/trials", json={
            "service_id": ARC_SERVICE, "customer_id": customer, "store_id": DEMO_STORE,
            "channel": "front_desk", "staff_id": f"emp-00{42 + n}", "handset": ["4g", "volte"],
        })
        if resp.status_code != 201:
            raise DemoError(f"trial refused: {resp.status_code} {resp.text[:300]}")
        trials.append(resp.json()["id"])
    report.trials_started = len(trials)
    for day in range(1, ARC_DAYS + 1):
        clock.advance(timedelta(days=1))
        run_due(hub.engine, clock)
        if day == ARC_RATING_DAY and trials:
            staff.post(f"/v1/trials/{trials[0]}/feedback", json={"rating": 5, "feedback": "fast"})
        if day == ARC_CONVERT_DAY and trials:
            staff.post(f"/v1/trials/{trials[0]}/convert", json={"channel": "agent"})
        if day == ARC_DAYS and len(trials) > 1:
            staff.post(f"/v1/trials/{trials[1]}/feedback", json={"reason": "price"})
        run_due(hub.engine, clock)
        dispatch_due(hub.engine, crypto, sender, clock)
        tick()
    report.trials_converted = sum(
        staff.get(f"/v1/trials/{t}").json()["state"] == "converted" for t in trials
    )
    with Session(hub.engine) as session:
        rows = session.execute(
            select(OutboxMessage.channel, OutboxDelivery.status, func.count())
            .join(OutboxDelivery, OutboxDelivery.outbox_id == OutboxMessage.id)
            .where(OutboxMessage.channel != "sms_otp")
            .group_by(OutboxMessage.channel, OutboxDelivery.status)
        ).all()
    report.trial_messages = {f"{ch} {st}": n for ch, st, n in rows}
    with hub.client() as admin:
        chart = admin.get("/v1/arc/funnel", params={"by": "service", "format": "png"})
    if chart.status_code == 200:
        (workdir / "arc_funnel.png").write_bytes(chart.content)
        report.charts.append("arc_funnel.png")


def _save_charts(hub, day, workdir: Path, tick) -> list[str]:  # type: ignore[no-untyped-def]
    """The store back office's charts for the demo day (visits, movement, orders) as PNG."""
    saved = []
    with hub.client() as admin:
        for name, path, params in REPORT_CHARTS:
            query = {**params, "start": day.isoformat(), "end": day.isoformat()}
            if path.startswith("/v1/oao"):
                query = params
            resp = admin.get(path, params=query)
            if resp.status_code == 200 and resp.content:
                (workdir / name).write_bytes(resp.content)
                saved.append(name)
            tick()
    return saved


def _launch_welcome_campaign(hub) -> str:  # type: ignore[no-untyped-def]
    """Regional ops draft a first-visit coupon campaign; the admin approves; it goes live."""
    from hub.models.auth import Role
    from storewave.demo_world import DemoError

    with hub.client() as admin, hub.client(hub.api_key(Role.REGIONAL_OPS, region_id="fz")) as ops:
        tpl = ops.post("/v1/coupon-templates", json={
            "name": "Welcome: 20 yuan off accessories", "kind": "value", "value": 2000,
            "min_spend_cents": 5000, "valid_days": 14, "stores": [DEMO_STORE],
            "region_id": "fz",
        })
        if tpl.status_code != 201:
            raise DemoError(f"coupon template refused: {tpl.status_code} {tpl.text[:300]}")
        camp = ops.post("/v1/campaigns", json={
            "name": "Welcome to Gulou", "region_id": "fz", "trigger": "first_visit",
            "where": {"stores": [DEMO_STORE]},
            "reward": {"kind": "coupon", "coupon_template_id": tpl.json()["id"],
                       "title": "20 yuan off accessories"},
            "caps": {"per_customer_per_day": 1, "budget": 100},
            "priority": 10, "holdout_share": 0.0,
        })
        if camp.status_code not in (200, 201):
            raise DemoError(f"campaign refused: {camp.status_code} {camp.text[:300]}")
        cid = camp.json()["id"]
        for who, step in ((admin, "approve"), (ops, "launch")):
            moved = who.post(f"/v1/campaigns/{cid}/transitions", json={"transition": step})
            if moved.status_code != 200:
                raise DemoError(f"campaign {step} refused: {moved.status_code} {moved.text[:300]}")
    return str(camp.json()["name"])


def _oao_order(hub, clock, report: DemoReport) -> None:  # type: ignore[no-untyped-def]
    """A SIM card ordered on the official account goes to the nearest open store."""
    from hub.models.auth import Role
    from storewave.demo_world import DemoError

    now = clock.now()
    body = {
        "client_order_key": f"demo-{int(now.timestamp())}",
        "channel": "official_account",
        "product": "sim_card",
        "region_id": "fz",
        "address": "12 Dongjie Rd, Gulou, Fuzhou",
        "latitude": 26.0885,
        "longitude": 119.2995,
        "window_start": (now + timedelta(hours=1)).isoformat(),
        "window_end": (now + timedelta(hours=4)).isoformat(),
        "priority": "normal",
    }
    with hub.client() as ops:
        resp = ops.post("/v1/orders", json=body)
        if resp.status_code not in (200, 201):
            raise DemoError(f"order refused: {resp.status_code} {resp.text[:200]}")
        order = resp.json()
        history = ops.get(f"/v1/orders/{order['id']}/history").json()
    report.order_store = order["store_id"]
    decisions = history["dispatches"]
    report.order_candidates = max((len(d.get("candidates", [])) for d in decisions), default=0)
    if order["store_id"] is None:
        report.order_status = order["status"]
        return
    with hub.client(hub.api_key(Role.STORE_STAFF, store_id=order["store_id"])) as staff:
        accepted = staff.post(f"/v1/orders/{order['id']}/accept")
        if accepted.status_code != 200:
            raise DemoError(f"store could not accept: {accepted.status_code} {accepted.text[:200]}")
        report.order_status = accepted.json()["status"]


def _start_counter(hub, workdir: Path, mic):  # type: ignore[no-untyped-def]
    """Start the counter's real edge agent (real detector) listening to ``mic``."""
    from edge.agent.agent import Agent
    from edge.agent.settings import AgentOptions
    from edge.audio.sources import ArraySource
    from edge.modem.detector import StreamingDetector
    from storewave.demo_world import SAMPLE_RATE, node_data_dir

    options = AgentOptions(
        node_id=COUNTER_NODE, password=hub.seeds.node_passwords[COUNTER_NODE],
        broker_url=hub.runtime.broker.url, data_dir=node_data_dir(workdir, COUNTER_NODE),
        sample_rate=SAMPLE_RATE,
    )
    agent = Agent(options, ArraySource(mic.blocks(), SAMPLE_RATE),
                  StreamingDetector(SAMPLE_RATE))
    agent.start()
    return agent


def print_report(report: DemoReport, console: Console) -> None:
    """The summary table."""
    table = Table(title=f"StoreWave demo: store {DEMO_STORE}")
    table.add_column("what")
    table.add_column("result", justify="right")
    for label, value in report.rows():
        table.add_row(label, value)
    console.print(table)


def demo_command(
    phones: int = typer.Option(DEFAULT_PHONES, min=1, max=200, help="Phones that walk in."),
    minutes: float = typer.Option(DEFAULT_MINUTES, min=0.5, max=60, help="Simulated minutes."),
    seed: int = typer.Option(20131001, help="Seed for every random choice."),
    out: Path | None = typer.Option(None, help="Folder for state and the report."),
) -> None:
    """Run the whole StoreWave loop on embedded defaults and print a report."""
    from storewave.demo_world import DemoError

    setup_logging("WARNING")
    console = Console()
    workdir = out or Path("var/demo") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir.mkdir(parents=True, exist_ok=True)
    console.rule("StoreWave demo")
    try:
        report = run_demo(workdir, phones, minutes, seed, console)
    except DemoError as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        raise typer.Exit(1) from None
    print_report(report, console)
    (workdir / "report.json").write_text(json.dumps(report.__dict__, indent=2, default=str))
    console.print(f"report and state written to [bold]{workdir}[/bold]")
