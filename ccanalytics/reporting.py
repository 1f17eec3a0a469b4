"""One report end to end — parameters from the request, render the notebook, summarise, deliver —
shared by ``ccanalytics report …`` and the scheduler's report jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from . import dailyreport, labels, metrics, problemcalls, reports, reportsend, timeutil
from .config import Settings, settings_env
from .errors import InvalidArgument


@dataclass(frozen=True)
class ReportRun:
    rendered: reports.Rendered
    subject: str
    summary: str
    delivery: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.rendered.to_dict(), "subject": self.subject, "delivery": self.delivery}


def _period(settings: Settings, date_from: date | None, date_to: date | None, days: int) -> tuple[date, date]:
    last = date_to or timeutil.today(settings.timezone) - timedelta(days=1)
    first = date_from or last - timedelta(days=days - 1)
    if first > last:
        raise InvalidArgument("--from is after --to")
    return first, last


def _problems_summary(engine: Engine, first: date, last: date, tz: str, thresholds: problemcalls.Thresholds) -> str:
    found = problemcalls.find(engine, first, last, thresholds=thresholds, tz=tz)
    total = metrics.summary(engine, first, last, tz=tz).total_calls
    lines = [f"Проблемных звонков: {len(found)} из {total}."]
    for p in problemcalls.patterns(found)[:5]:
        lines.append(
            f"• {problemcalls.FLAGS[p.main]} · {labels.scenario(p.scenario)}: {p.calls} звонков — "
            f"{problemcalls.CAUSES[p.suggested_cause]}"
        )
    return "\n".join(lines)


def run(
    engine: Engine,
    settings: Settings,
    kind: str,
    *,
    day: date | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    test: str | None = None,
    baseline: str | None = None,
    thresholds: problemcalls.Thresholds | None = None,
    send: Sequence[str] = (),
    skip_delivered: bool = False,
) -> ReportRun:
    """Render the ``kind`` report and deliver it through the channels ``send`` (configured in
    settings; ConfigError before anything runs when one is not)."""
    from .notify import require_channels

    channels = require_channels(settings, send) if send else {}
    tz = settings.timezone
    params: dict[str, Any]
    if kind == "daily":
        day = day or timeutil.today(tz) - timedelta(days=1)
        name, params = day.isoformat(), {"report_date": day.isoformat()}
        subject = f"Ежедневный отчёт колл-центра за {day:%d.%m.%Y}"
    elif kind == "problems":
        first, last = _period(settings, date_from, date_to, 7)
        t = thresholds or problemcalls.Thresholds()
        name = f"{first}_{last}"
        params = {
            "date_from": first.isoformat(),
            "date_to": last.isoformat(),
            "quality_below": t.quality_below,
            "reasks_min": t.reasks_min,
            "tool_errors_min": t.tool_errors_min,
            "response_p95_ms": t.response_p95_ms,
            "include_transfers": t.include_transfers,
        }
        subject = f"Разбор проблемных звонков за {first:%d.%m.%Y} — {last:%d.%m.%Y}"
    elif kind == "cost":
        first, last = _period(settings, date_from, date_to, 30)
        name = f"{first}_{last}"
        params = {"date_from": first.isoformat(), "date_to": last.isoformat(), "baseline": baseline}
        subject = f"Обзор стоимости звонков за {first:%d.%m.%Y} — {last:%d.%m.%Y}"
    elif kind == "ab":
        from .abview import pick_test

        ab = pick_test(engine, test)
        name = f"{ab.test_name}-{timeutil.today(tz).isoformat()}"
        params = {"test": str(ab.id)}
        subject = f"Результаты A/B-теста «{ab.test_name}»"
    else:
        raise InvalidArgument(f"unknown report kind {kind!r}; one of: {', '.join(reports.KINDS)}")

    # the notebook's kernel sees this process's settings and database (the environment, never the notebook)
    env = {**settings_env(settings), "CCA_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    rendered = reports.render(kind, name, params, settings.resolved_reports_dir(), env=env)
    if kind == "daily":
        summary = dailyreport.summary_text(engine, day, tz=tz)
    elif kind == "problems":
        summary = _problems_summary(engine, first, last, tz, thresholds or problemcalls.Thresholds())
    else:
        summary = subject
    delivery = {}
    if channels:
        delivery = reportsend.deliver(
            rendered, channels, subject=subject, summary=summary, skip_delivered=skip_delivered
        )
    return ReportRun(rendered, subject, summary, delivery)
