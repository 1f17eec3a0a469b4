"""Issue 18, end to end at production timings: each incident — a burst of transfers, a burst of
response latency, STT errors, abnormal spend — reaches people within its rule's time and its
resolution follows, each message exactly once, in order, in Russian; a fresh start and a healthy day
page nothing (no alert even pending).

The path: the demo traffic's live metrics (ccanalytics.demo.livesim) on 127.0.0.1 → Prometheus
(scrape 15 s, rules 30 s, as prometheus/prometheus.yml) with prometheus/alerts.yml → Alertmanager
with the repository's configuration and templates (tests/alerting.py; group_wait and group_interval
as in production) → the local Telegram Bot API stand-in and SMTP server.

One processor serves two shops (tenants), 120 calls a minute each:
- the default tenant from a fresh Prometheus: after 2 healthy minutes, a burst of transfers and of
  latency at once until both are paged (+10 s), then healthy until both are resolved;
- `prokoleso`, with a healthy day behind it: 25 hours of the same traffic (20 minutes simulated
  before the run on a stepped clock, repeated) written into Prometheus's storage with `promtool
  tsdb create-blocks-from openmetrics` (the processor's previous run: its counters restart from 0
  with this one). Its 3 STT errors of 6 minutes ago stay under the threshold; with the bursts come
  3 more (6 in 10 minutes: paged), and the page resolves when the old ones leave the 10-minute
  window. With the bursts too, every call costs 10 times as much until the spend is paged (+10 s).

CCAAbnormalSpend compares 6 hours with a day and a week and holds 30 minutes: no run of minutes shows
it at its own scale. The run adds a copy of its rules with every duration divided by 720 (an hour is
5 s: 6 h → 30 s, a day → 2 min, a week → 14 min, `for` 30 m → 2.5 s), evaluated every 10 s and
labelled `time_scale="1/720"`: the expressions, annotations and routing of prometheus/alerts.yml,
derived at run time. The rule's timing at its own scale is the promtool tests' (alerts_test.yml,
alerts_test_longterm.yml); here the real rule, with a day of data, is not even pending.

One test of 5–6 minutes wall-clock (its own xdist group). The rules' timing at each volume:
alerts_test_timing.yml."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from alerting import PROM, alertmanager_env, prometheus_env
from fakechannels import FakeTelegram, Mailbox, SMTPServer
from prometheus_client import CollectorRegistry
from promhistory import Scrape, backfill, compressed_rules, repeated, simulated_scrapes
from systools import free_port, require

from ccanalytics.core import rutext
from ccanalytics.demo import generator
from ccanalytics.demo.livesim import LiveSimulator
from ccanalytics.ops.telemetry import LiveMetrics

PAGE_WITHIN = 120.0  # seconds from an incident's start to its message (issue 18)
RESOLVE_WITHIN = 300.0  # seconds from an incident's end to its resolution
HEALTHY_STRETCH = 120.0  # seconds of a fresh Prometheus beside healthy traffic before the incidents
ADMIN = "https://cca.shop.example"
SHOP = "prokoleso"  # the tenant with a healthy day behind it
SCRAPE = 15  # seconds, prometheus/prometheus.yml
DAY = 25 * 3600  # the healthy day: a day and an hour, so the real spend rule holds its 24 hours of data
STRETCH = 1200  # the day repeats 20 simulated minutes (6 turns of the demo's 400 calls)
ERRORS = 3  # STT errors before the run and again with the bursts: 6 in 10 minutes is more than 5
ERRORS_CLEAR_AT = 240  # seconds after the healthy day's end when the old errors leave the window
ERRORS_WINDOW = 600  # CCAComponentErrors: errors over the last 10 minutes
SCALE = 720  # the spend rule's copy: every duration divided by this
SCALED_INTERVAL = "10s"  # and evaluated this often

pytestmark = [pytest.mark.slow, pytest.mark.realclock, pytest.mark.xdist_group("alert_timing")]


def _rules() -> list[dict]:
    return yaml.safe_load((PROM / "alerts.yml").read_text(encoding="utf-8"))["groups"]


def _alert(name: str) -> dict:
    return next(r for g in _rules() for r in g["rules"] if r.get("alert") == name)


def _stem(text: str) -> str:
    """The fixed words an annotation starts with (before its first template action)."""
    return text.split("{{")[0].strip().rstrip(":=").strip()


# the Russian name of each alert, the header of its resolution (prometheus/templates/ccanalytics.tmpl)
TITLES = dict(re.findall(r'eq \. "(\w+)" \}\}([^{\n]+)', (PROM / "templates" / "ccanalytics.tmpl").read_text()))
# alert -> (tenant, channels, severity): who is paged
INCIDENTS = {
    "CCAHighTransferRate": ("", ("telegram", "email"), "critical"),
    "CCAResponseLatencyHigh": ("", ("telegram", "email"), "critical"),
    "CCAComponentErrors": (SHOP, ("telegram", "email"), "critical"),
    "CCAAbnormalSpend": (SHOP, ("email",), "warning"),
}
# pending while replies are slow (a 10-minute `for`), never sent during the short burst
LATENCY_BUDGETS = {("CCALLMLatencyOverBudget", ""), ("CCAResponseLatencyOverBudget", "")}
HEADS = {"critical": "🔴 Критично: ", "warning": "🟠 Предупреждение: "}
COLOURS = {"critical": "#c62828", "warning": "#e65100", "resolved": "#2e7d32"}


# ------------------------------------------------------------------------------------ the traffic
class Staged(LiveSimulator):
    """The demo traffic with incidents switched on and off while it runs. ``staged``: demo-traffic
    incidents that change every call ending now (``transfers``, ``latency``, ``spend``: every call
    costs livesim.SPEND_FACTOR times as much)."""

    staged: frozenset[str] = frozenset()

    def _staged(self, call: dict) -> dict:
        staged = self.staged  # (switched from the test's thread)
        for incident in sorted(staged):
            self.incident = incident
            call = super()._staged(call)
        self.incident = None
        return call


def _traffic(live: LiveMetrics, calls: list[dict], seed: int) -> Staged:
    """The demo-traffic defaults: 120 calls a minute, each lasting its duration / 20."""
    return Staged(live, calls, calls_per_minute=120, speedup=20, seed=seed)


# ----------------------------------------------------------------------- Prometheus's history and rules
def healthy_stretch(calls: list[dict], tenant: str, seed: int) -> list[Scrape]:
    """STRETCH seconds of the demo traffic of ``tenant`` as scraped every 15 s, after 5 minutes of
    warm-up, simulated on a stepped clock (a second or two)."""
    registry = CollectorRegistry()
    return simulated_scrapes(_traffic(LiveMetrics(registry, tenant=tenant), calls, seed), registry, STRETCH, SCRAPE)


def compressed_spend_rule() -> dict:
    return compressed_rules(_rules(), "CCAAbnormalSpend", SCALE, SCALED_INTERVAL)


def test_a_repeated_stretch_keeps_counting_and_thins_out_with_age():
    counter, gauge = ("c_total", (("tenant", "x"),)), ("g", (("tenant", "x"),))
    scrapes = [{counter: (True, 10.0 + i), gauge: (False, float(i))} for i in range(5)]  # a minute, 4 counted
    series: dict[str, list[tuple[int, float]]] = {}
    *lines, eof = repeated(scrapes, 0, 7200, {"job": "j"}, {counter: (7170, 100.0)})
    for line in lines:
        name, value, ts = line.rsplit(" ", 2)
        series.setdefault(name, []).append((int(ts), float(value)))
    counted, level = series['c_total{job="j",tenant="x"}'], series['g{job="j",tenant="x"}']
    assert eof == "# EOF" and counted[0] == (0, 0.0) and counted[-1] == (7200, 120 * 4 + 100)
    assert all(b[1] >= a[1] for a, b in itertools.pairwise(counted)), counted  # never a reset
    assert dict(counted)[7155] == 119 * 4 + 1 and dict(counted)[7170] == 119 * 4 + 2 + 100
    steps = [b[0] - a[0] for a, b in itertools.pairwise(counted)]
    assert steps == [120] * 30 + [60] * 40 + [15] * 80, steps  # older than an hour, 20 minutes, then 15 s
    assert {v for _, v in level} == {0.0, 1.0, 2.0, 3.0}  # a gauge repeats


def test_the_spend_rule_compresses_every_duration():
    groups = compressed_spend_rule()["groups"]
    [group] = groups
    text = yaml.safe_dump(groups)
    assert "[30000ms]" in text and "[840000ms:5000ms]" in text and "offset 120000ms" in text, text
    assert not re.search(r"\[\d+[hdw]|offset \d+[hdw]|(?<!x720_)cca:cost", text), text
    alert = group["rules"][-1]
    assert alert["for"] == "2500ms" and alert["labels"]["time_scale"] == "1/720"
    assert {r["record"] for r in group["rules"][:-1]} == {
        f"x720_cca:cost_usd:{n}" for n in ("increase6h", "history_hours", "daily_avg7d", "increase6h_same_hours")
    }


# ---------------------------------------------------------------------------------- the channels
class TimedTelegram(FakeTelegram):
    """The Bot API stand-in, noting when each message arrived (monotonic clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: list[tuple[float, str]] = []

    def _answer(self, handler, req) -> None:
        if req.method == "sendMessage":
            self.arrived.append((time.monotonic(), str(req.payload.get("text", ""))))
        super()._answer(handler, req)


class TimedMailbox(Mailbox):
    """The SMTP mailbox, noting when each message arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: list[float] = []

    async def handle_DATA(self, server, session, envelope):
        self.arrived.append(time.monotonic())
        return await super().handle_DATA(server, session, envelope)


def deliveries(tg: TimedTelegram, mailbox: TimedMailbox) -> list[dict]:
    """Every message so far, oldest first: channel, arrival, header (first line / subject), text."""
    out = [
        {"channel": "telegram", "at": at, "head": text.split("\n", 1)[0], "text": text, "html": ""}
        for at, text in list(tg.arrived)
    ]
    for at, mail in zip(list(mailbox.arrived), list(mailbox.messages), strict=False):
        out.append(
            {
                "channel": "email",
                "at": at,
                "head": mail["Subject"].removeprefix("[ccanalytics] "),
                "text": mail.get_body(("plain",)).get_content(),
                "html": mail.get_body(("html",)).get_content(),
            }
        )
    return sorted(out, key=lambda d: d["at"])


FIRING_STEMS = {name: _stem(_alert(name)["annotations"]["summary"]) for name in INCIDENTS}


def classify(message: dict) -> tuple[str, str] | None:
    """(alert, "firing" | "resolved") of a message of the staged incidents; None for anything else."""
    for name, (tenant, _, severity) in INCIDENTS.items():
        if message["head"].startswith(HEADS[severity] + FIRING_STEMS[name]):
            return name, "firing"
        if message["head"] == f"✅ Решено: {TITLES[name]}" + (f" — сеть {tenant}" if tenant else ""):
            return name, "resolved"
    return None


def prometheus_alerts(prom: str) -> list[dict]:
    """Prometheus's pending and firing alerts."""
    with urllib.request.urlopen(prom + "/api/v1/alerts", timeout=5) as r:
        return json.load(r)["data"]["alerts"]


def _seconds(duration: str) -> float:
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in re.findall(r"(\d+)([hms])", duration))


def test_alertmanager_sends_a_resolution_within_a_minute_of_prometheus():
    """Alertmanager sends a group's resolution at the group's next flush, group_interval after the
    last: the 5 minutes from a burst's end to its resolution in Telegram leave one minute for it."""
    route = yaml.safe_load(re.sub(r"\$\{[A-Z_]+\}", "x", (PROM / "alertmanager.yml.tmpl").read_text()))["route"]
    assert _seconds(route["group_wait"]) <= 30, route
    assert _seconds(route["group_interval"]) <= 60, route


@dataclass
class Stage:
    """The running system: channels, Prometheus, the two shops' traffic."""

    tg: TimedTelegram
    mailbox: TimedMailbox
    prom: str
    started: float  # when Prometheus started (monotonic)
    errors_clear: float  # when the shop's old STT errors leave the 10-minute window (monotonic)
    default: Staged  # the default tenant's traffic
    shop: Staged  # the shop's traffic
    shop_live: LiveMetrics

    def deliveries(self) -> list[dict]:
        return deliveries(self.tg, self.mailbox)


@contextmanager
def stage(tmp_path: Path) -> Iterator[Stage]:
    """The shop's healthy day in Prometheus's storage (with 3 STT errors ERRORS_WINDOW -
    ERRORS_CLEAR_AT seconds before its end), both shops' traffic, Alertmanager, then Prometheus."""
    tg, smtp = TimedTelegram().up(), SMTPServer()
    smtp.mailbox = TimedMailbox()
    smtp.up()
    live = LiveMetrics(CollectorRegistry())
    shop_live = live.for_tenant(SHOP)
    live_port = free_port()
    target = {"job": "call-processor", "instance": f"127.0.0.1:{live_port}"}
    calls = list(generator.generate_calls(seed=42, days=1, calls_per_day=400, ab_test=None))
    stretch = healthy_stretch(calls, SHOP, seed=7)
    end = int(time.time()) // SCRAPE * SCRAPE  # the day ends seconds before Prometheus starts
    errors_at = end - ERRORS_WINDOW + ERRORS_CLEAR_AT + SCRAPE  # the first scrape that shows them
    stt = ("cca_component_errors_total", tuple(sorted({"source": "live", "tenant": SHOP, "component": "stt"}.items())))
    backfill(tmp_path / "tsdb", repeated(stretch, end - DAY, end, target, {stt: (errors_at, ERRORS)}))
    live.serve(live_port)
    sims = [_traffic(live, calls, seed=42).start(), _traffic(shop_live, calls, seed=7).start()]
    try:
        with alertmanager_env(tg, smtp, ADMIN, tmp_path) as am:
            prod = yaml.safe_load((PROM / "prometheus.yml").read_text())
            assert (prod["global"]["scrape_interval"], prod["global"]["evaluation_interval"]) == ("15s", "30s")
            scaled_rules = tmp_path / f"spend-x{SCALE}.yml"
            scaled_rules.write_text(yaml.safe_dump(compressed_spend_rule(), allow_unicode=True))
            check = subprocess.run([require("promtool"), "check", "rules", str(scaled_rules)], capture_output=True)
            assert check.returncode == 0, check.stdout + check.stderr
            cfg = {
                "global": prod["global"],
                "rule_files": [str(PROM / "alerts.yml"), str(scaled_rules)],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am.removeprefix("http://")]}]}]},
                "scrape_configs": [{"job_name": target["job"], "static_configs": [{"targets": [target["instance"]]}]}],
            }
            started, wall = time.monotonic(), time.time()
            with prometheus_env(cfg, tmp_path) as prom:
                # the old errors count until the scrape before them leaves the window
                errors_clear = started + (errors_at - SCRAPE + ERRORS_WINDOW - wall)
                yield Stage(tg, smtp.mailbox, prom, started, errors_clear, *sims, shop_live)
    finally:
        for sim in sims:
            sim.stop()
        tg.down()
        smtp.down()


EXPECTED = {(n, s, c) for n, (_, channels, _) in INCIDENTS.items() for c in channels for s in ("firing", "resolved")}


def test_incidents_are_paged_in_time_once_in_order_and_in_russian(tmp_path):
    prepared = time.monotonic()
    with stage(tmp_path) as st:
        print(f"\nthe healthy day and the programs took {st.started - prepared:.0f} s")
        # a fresh Prometheus beside healthy traffic, and a healthy day behind a restart: nothing sent,
        # nothing even pending
        time.sleep(max(0.0, st.started + HEALTHY_STRETCH - time.monotonic()))
        assert st.deliveries() == [], [d["head"] for d in st.deliveries()]
        assert prometheus_alerts(st.prom) == [], prometheus_alerts(st.prom)

        # every incident at once; the bursts and the spend go on 10 s after their pages
        begun = time.monotonic()
        # (the STT page needs scrape, evaluation and group_wait, up to 75 s, before the old errors go)
        assert st.errors_clear - begun > 85, (
            f"the old errors go {st.errors_clear - begun:.0f} s after the start: Prometheus started late"
        )
        st.default.staged = frozenset({"transfers", "latency"})
        st.shop.staged = frozenset({"spend"})
        for _ in range(ERRORS):
            st.shop_live.component_error("stt")
        ended = {"CCAComponentErrors": st.errors_clear}
        events: dict[tuple[str, str, str], float] = {}  # (alert, status, channel) -> first arrival
        seen: dict[tuple[str, str, str], dict] = {}  # (alert, tenant, time_scale) -> Prometheus's alert
        states: dict[tuple[str, str, str], set[str]] = {}  # -> pending, firing
        polls = 0
        while time.monotonic() < begun + PAGE_WITHIN + 60 + RESOLVE_WITHIN + 60 and not EXPECTED <= events.keys():
            time.sleep(0.5)
            polls += 1
            if polls % 4 == 0:
                for a in prometheus_alerts(st.prom):
                    labels = a["labels"]
                    key = (labels["alertname"], labels.get("tenant", ""), labels.get("time_scale", ""))
                    seen[key] = a
                    states.setdefault(key, set()).add(a["state"])
            for d in st.deliveries():
                if (kind := classify(d)) is not None:
                    events.setdefault((*kind, d["channel"]), d["at"])
            now = time.monotonic()
            paged = {name: at for (name, status, _), at in events.items() if status == "firing"}
            bursts = ("CCAHighTransferRate", "CCAResponseLatencyHigh")
            if st.default.staged and all(b in paged for b in bursts) and now >= max(paged[b] for b in bursts) + 10:
                st.default.staged = frozenset()
                ended |= dict.fromkeys(bursts, now)
            if st.shop.staged and "CCAAbnormalSpend" in paged and now >= paged["CCAAbnormalSpend"] + 10:
                st.shop.staged = frozenset()
                ended["CCAAbnormalSpend"] = now
            if now > begun + PAGE_WITHIN + 60 and len(paged) < len(INCIDENTS):
                break  # one was never paged: said below
        messages = st.deliveries()
        errors_clear = st.errors_clear

    heads = [f"{d['channel']}: {d['head']}" for d in messages]
    for name, (_, channels, _) in INCIDENTS.items():
        fired = min((at for (n, s, _), at in events.items() if (n, s) == (name, "firing")), default=float("nan"))
        done = max((at for (n, s, _), at in events.items() if (n, s) == (name, "resolved")), default=float("nan"))
        print(
            f"{name} ({', '.join(channels)}): paged {fired - begun:.0f} s after the start, resolved "
            f"{done - ended.get(name, float('nan')):.0f} s after the end"
        )

    # in time: each page within 2 minutes of the start, each resolution within 5 of the end
    for name, status, channel in sorted(EXPECTED):
        at = events.get((name, status, channel))
        assert at is not None, (name, status, channel, heads)
        if status == "firing":
            assert at - begun <= PAGE_WITHIN, (name, channel, at - begun, heads)
        else:
            assert at - ended[name] <= RESOLVE_WITHIN, (name, channel, at - ended[name], heads)
    # the errors are counted over 10 minutes: the page held until the old ones left the window
    assert min(events[("CCAComponentErrors", "resolved", c)] for c in ("telegram", "email")) >= errors_clear

    # once and in order: per alert and channel its page, then its resolution, and nothing else
    for channel in ("telegram", "email"):
        got = [classify(d) for d in messages if d["channel"] == channel]
        assert None not in got, heads
        for name, (_, channels, _) in INCIDENTS.items():
            want = [(name, "firing"), (name, "resolved")] if channel in channels else []
            assert [k for k in got if k[0] == name] == want, (name, channel, heads)

    # as people read it: Russian numbers, warning and critical apart, a resolution written as one
    pages = {}
    for d in messages:
        name, status = classify(d)
        tenant, _, severity = INCIDENTS[name]
        numbers = re.sub(r"\d\d\.\d\d \d\d:\d\d", "", d["head"] + d["text"])  # not the times: 06.12 08:49
        assert not re.search(r"\d\.\d", numbers), d["text"]  # no decimal points
        if d["html"]:
            assert f'<h2 style="color: {COLOURS[status if status == "resolved" else severity]}">' in d["html"]
        if status == "firing":
            pages[name] = d["head"].removeprefix(HEADS[severity])
            assert (f"(сеть {tenant})" in d["head"]) if tenant else ("сеть" not in d["head"]), d["head"]
        else:
            resolution = seen[(name, tenant, f"1/{SCALE}" if name == "CCAAbnormalSpend" else "")]["annotations"]
            assert resolution["resolution"] in d["text"] and pages[name] not in d["text"], d["text"]
    spend_value = re.fullmatch(
        r"Аномальные расходы на API: темп \$([\d\u202f]+(?:,\d+)?) в сутки \(сеть prokoleso\)",
        pages["CCAAbnormalSpend"],
    )
    assert spend_value, pages["CCAAbnormalSpend"]
    assert rutext.compact(float(spend_value[1].replace("\u202f", "").replace(",", ".")), 2) == spend_value[1]
    errors = re.fullmatch(
        r"Ошибки распознавания речи \(STT\): (\d+) за 10 минут \(сеть prokoleso\)", pages["CCAComponentErrors"]
    )
    assert errors and int(errors[1]) >= 2 * ERRORS, pages["CCAComponentErrors"]

    # nothing else fired; only the budgets of the slow replies were pending (for 10 minutes): the real
    # spend rule over the shop's day of data was not even pending
    staged = {(n, t, f"1/{SCALE}" if n == "CCAAbnormalSpend" else "") for n, (t, _, _) in INCIDENTS.items()}
    others = {k: v for k, v in states.items() if k not in staged}
    assert all(k[:2] in LATENCY_BUDGETS and v == {"pending"} for k, v in others.items()), others
