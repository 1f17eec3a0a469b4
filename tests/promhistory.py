"""Prometheus's history and rules at another time scale, for tests that run a real Prometheus for a few
minutes: a stretch of live metrics simulated on a stepped clock, repeated into a long healthy history
and written into Prometheus's storage before it starts (`promtool tsdb create-blocks-from
openmetrics`), and a copy of alert rules with every duration divided by a factor (an alert that looks
at hours or days and holds for half an hour, shown in seconds). Used by test_alert_timing.py."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry
from systools import require

from ccanalytics.demo.livesim import LiveSimulator

Sample = tuple[str, tuple[tuple[str, str], ...]]  # metric name, labels
Scrape = dict[Sample, tuple[bool, float]]  # -> (additive: a counter or a histogram's part, value)


def _scrape(registry: CollectorRegistry) -> Scrape:
    """Every sample a scrape would read (without the `_created` ones and the last call's wall time)."""
    out = {}
    for family in registry.collect():
        if family.name == "cca_last_call_timestamp_seconds":  # the simulating machine's clock
            continue
        for s in family.samples:
            if not s.name.endswith("_created"):
                out[(s.name, tuple(sorted(s.labels.items())))] = (family.type in ("counter", "histogram"), s.value)
    return out


def simulated_scrapes(sim: LiveSimulator, registry: CollectorRegistry, seconds: int, every: int) -> list[Scrape]:
    """``seconds`` of ``sim``'s traffic (recording into ``registry``) as scraped ``every`` seconds
    (``seconds / every + 1`` scrapes), after 5 minutes of warm-up; its clock is stepped, not waited for."""
    in_progress: list = []
    scrapes = []
    warm, step = round(300 / sim.interval), round(every / sim.interval)
    for tick in range(warm + round(seconds / sim.interval) + 1):
        sim.step(in_progress, tick * sim.interval)
        if tick >= warm and (tick - warm) % step == 0:
            scrapes.append(_scrape(registry))
    return scrapes


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    assert not any(set(v) & set('"\\\n') for _, v in labels), labels  # nothing to escape
    return ",".join(f'{k}="{v}"' for k, v in labels)


def repeated(
    scrapes: list[Scrape], start: int, end: int, target: dict[str, str], extra: dict[Sample, tuple[int, float]]
) -> Iterator[str]:
    """OpenMetrics lines from ``start`` to ``end`` (unix seconds): the scraped stretch over and over,
    counters going on from one turn to the next, as from ``target`` (job, instance) — a sample every
    15 s for the last 20 minutes, every minute for the last hour, every 2 minutes before (both
    divide the stretch). ``extra``: an addition to a sample from a time on."""
    every = 15
    period = (len(scrapes) - 1) * every
    base, last = scrapes[0], scrapes[-1]
    for ts in range(start, end + 1, every):
        age = end - ts
        if age > 1200 and (ts - start) % (60 if age <= 3600 else 120):
            continue
        turn, offset = divmod(ts - start, period)
        now = scrapes[offset // every]
        for key, (additive, total) in last.items():
            if key not in now and not additive:
                continue
            first = base.get(key, (True, 0.0))[1]
            value = now.get(key, (True, first))[1]
            if additive:  # whole turns so far, then this one's part
                value = turn * (total - first) + value - first
            since, plus = extra.get(key, (end + 1, 0.0))
            if ts >= since:
                value += plus
            name, labels = key
            yield f"{name}{{{_labels(tuple(target.items()) + labels)}}} {value!r} {ts}"
    yield "# EOF"


def backfill(tsdb: Path, lines: Iterator[str]) -> None:
    """Write ``lines`` (OpenMetrics) as blocks of the Prometheus storage in ``tsdb``."""
    source = tsdb.parent / "history.om"
    with source.open("w") as out:
        for line in lines:
            out.write(line + "\n")
    done = subprocess.run(
        [require("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source), str(tsdb)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    source.unlink()


_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def scaled(duration: str, scale: int) -> str:
    """A Prometheus duration divided by ``scale``, in milliseconds: ``6h`` / 720 → ``30000ms``."""
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    ms = sum(int(n) * _UNITS[u] for n, u in parts)
    assert ms % scale == 0, (duration, scale)
    return f"{ms // scale}ms"


def compressed_rules(groups: list[dict], alert: str, scale: int, interval: str) -> dict:
    """A rule file of ``alert`` and the recordings it reads, taken from ``groups``, with every duration
    (ranges, subqueries, offsets, `for`) divided by ``scale`` and the recordings renamed
    (``x720_cca:…``); the alert is labelled ``time_scale="1/720"``, the group evaluated every
    ``interval``."""
    group = next(g for g in groups if any(r.get("alert") == alert for r in g["rules"]))
    records = {r["record"]: r for r in group["rules"] if "record" in r}
    rule = next(r for r in group["rules"] if r.get("alert") == alert)
    needed: set[str] = set()
    todo = [rule["expr"]]
    while todo:
        for name in re.findall(r"cca:[\w:]+", todo.pop()):
            if name in records and name not in needed:
                needed.add(name)
                todo.append(records[name]["expr"])

    def rewrite(expr: str) -> str:
        expr = re.sub(
            r"\[(\w+)(?::(\w+))?\]",
            lambda m: f"[{scaled(m[1], scale)}" + (f":{scaled(m[2], scale)}]" if m[2] else "]"),
            expr,
        )
        expr = re.sub(r"\boffset (\w+)", lambda m: f"offset {scaled(m[1], scale)}", expr)
        return re.sub(r"cca:[\w:]+", lambda m: f"x{scale}_{m[0]}" if m[0] in needed else m[0], expr)

    rules = [{"record": f"x{scale}_{n}", "expr": rewrite(r["expr"])} for n, r in records.items() if n in needed]
    copy = {**rule, "expr": rewrite(rule["expr"]), "labels": {**rule["labels"], "time_scale": f"1/{scale}"}}
    if "for" in rule:
        copy["for"] = scaled(rule["for"], scale)
    return {"groups": [{"name": f"{group['name']}-x{scale}", "interval": interval, "rules": [*rules, copy]}]}
