"""Problem detection over a day: scenarios transferring ≥ 30 % of their calls, STT re-asks above
their baseline, and the words customers said right before the bot asked them to repeat (candidates
for STT hints). Findings are stored in quality_findings for alerts and reports."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Engine

from ccanalytics.analytics import checkruns, signals
from ccanalytics.core import clock, definitions, timeutil

TRANSFER_RATE = definitions.SCENARIO_TRANSFER_RATE
MIN_CALLS = definitions.SCENARIO_MIN_CALLS
REASK_FACTOR = 1.5
BASELINE_DAYS = 14
WORD = re.compile(r"[a-zа-яіїєґ'’]{3,}", re.IGNORECASE)
STOPWORDS = frozenset(
    "але або так так, що як для від мені мене мені вам вас нам нас вони його її там тут треба хочу можна будь ласка "
    "добрий день доброго дякую тому цей цього цієї яка який які було буде есть это что как для меня мне".split()
)


@dataclass(frozen=True)
class Finding:
    kind: str  # scenario_transfer_rate | stt_reask_rate | reasked_word
    day: date
    key: str
    value: float
    baseline: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "day": self.day.isoformat()}


def scenario_transfers(engine: Engine, day: date, *, threshold: float = TRANSFER_RATE, min_calls: int = MIN_CALLS):
    """Scenarios of the day (from daily_stats) whose transfer share is at least ``threshold``."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT scenario_breakdown, scenario_transfers FROM cca_daily_stats WHERE stat_date = :d"),
            {"d": day},
        ).one_or_none()
    if row is None:
        return []
    out = []
    for scenario, calls in sorted(row.scenario_breakdown.items()):
        transferred = row.scenario_transfers.get(scenario, 0)
        if calls >= min_calls and transferred / calls >= threshold:
            out.append(
                Finding(
                    "scenario_transfer_rate",
                    day,
                    scenario,
                    round(transferred / calls, 4),
                    threshold,
                    {"calls": calls, "transferred": transferred},
                )
            )
    return out


def reask_rate(engine: Engine, day: date, *, factor: float = REASK_FACTOR, baseline_days: int = BASELINE_DAYS):
    """STT re-asks per call of the day against the weighted rate of the previous days."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT stat_date, stt_reasks, total_calls FROM cca_daily_stats WHERE stat_date BETWEEN :a AND :d"),
            {"a": day - timedelta(days=baseline_days), "d": day},
        ).all()
    today = next((r for r in rows if r.stat_date == day), None)
    before = [r for r in rows if r.stat_date < day]
    base_calls = sum(r.total_calls for r in before)
    if today is None or not today.total_calls or not base_calls:
        return []
    rate, base = today.stt_reasks / today.total_calls, sum(r.stt_reasks for r in before) / base_calls
    if today.total_calls >= MIN_CALLS and rate > base * factor and rate - base > 0.02:
        return [
            Finding(
                "stt_reask_rate",
                day,
                "all",
                round(rate, 4),
                round(base, 4),
                {"calls": today.total_calls, "reasks": today.stt_reasks},
            )
        ]
    return []


_BEFORE_REASK = """
SELECT content FROM (
    SELECT content, speaker, lead(content) OVER w AS next_content, lead(speaker) OVER w AS next_speaker
    FROM call_turns WHERE created_at >= :start AND created_at < :end
    WINDOW w AS (PARTITION BY call_id ORDER BY turn_number, created_at, id)) t
WHERE speaker = 'customer' AND next_speaker = 'bot' AND next_content ~* :reask AND content IS NOT NULL
"""
# the processor's content and speaker are nullable: a turn without text says nothing here
_ALL_CUSTOMER = (
    "SELECT content FROM call_turns WHERE speaker = 'customer' AND content IS NOT NULL "
    "AND created_at >= :start AND created_at < :end"
)


def words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in WORD.findall(text) if w.lower() not in STOPWORDS]


def reasked_words(engine: Engine, day: date, *, tz: str = timeutil.DEFAULT_TZ, top: int = 15, min_count: int = 3):
    """Words customers said right before a re-ask, ranked by how much more often they occur there
    than in all customer speech of the day (lift)."""
    start, end = timeutil.period_bounds(day, day, tz)
    p = {"start": start, "end": end, "reask": signals.REASK_REGEX}
    with engine.connect() as conn:
        before = Counter(w for (text,) in conn.execute(sa.text(_BEFORE_REASK), p) for w in set(words(text)))
        overall = Counter(w for (text,) in conn.execute(sa.text(_ALL_CUSTOMER), p) for w in set(words(text)))
    n_before, n_all = sum(before.values()) or 1, sum(overall.values()) or 1
    ranked = []
    for word, count in before.items():
        if count < min_count:
            continue
        lift = (count / n_before) / (overall[word] / n_all) if overall[word] else float("inf")
        if lift >= 1.5:
            ranked.append(
                Finding("reasked_word", day, word, count, None, {"lift": round(lift, 2), "turns": overall[word]})
            )
    ranked.sort(key=lambda f: (-f.value, f.key))
    return ranked[:top]


def detect(engine: Engine, day: date | str, *, tz: str = timeutil.DEFAULT_TZ, store: bool = True) -> list[Finding]:
    """All findings of a day; stored (replacing the day's earlier findings) unless ``store=False``."""
    d = timeutil.to_date(day, tz)
    found = scenario_transfers(engine, d) + reask_rate(engine, d) + reasked_words(engine, d, tz=tz)
    if store:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM quality_findings WHERE day = :d"), {"d": d})
            checkruns.record(conn, "problems", d, clock.now())
            for f in found:
                conn.execute(
                    sa.text(
                        "INSERT INTO quality_findings (kind, day, key, value, baseline, details) "
                        "VALUES (:kind, :day, :key, :value, :baseline, :details)"
                    ),
                    {**asdict(f), "details": Jsonb(f.details)},
                )
    return found
