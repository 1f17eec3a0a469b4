"""One report end to end — parameters from the request, render the notebook, summarise, deliver —
shared by ``ccanalytics report …`` and the scheduler's report jobs.

The daily, problem-call, cost and weekly reports cover some tenants (``tenant=``) or all (the default). A report
of some tenants is another report: its file name ends with their slugs (``2026-11-24_prokoleso``), so
it has its own delivery record, and its title and subject name them. The A/B readout has no tenant: A/B
tests and prompts are shared by every tenant."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from ccanalytics.alerts.notify import require_channels
from ccanalytics.analytics import metrics
from ccanalytics.core import labels, rutext, timeutil
from ccanalytics.core.config import Settings, settings_env
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.db import tenants
from ccanalytics.reports import daily as dailyreport
from ccanalytics.reports import problemcalls
from ccanalytics.reports import render as reports
from ccanalytics.reports import send as reportsend
from ccanalytics.reports import weekly as weeklyreport
from ccanalytics.reports.abview import pick_test


@dataclass(frozen=True)
class ReportRun:
    rendered: reports.Rendered
    subject: str
    summary: str
    delivery: dict[str, str] = field(default_factory=dict)
    tenants: tenants.Scope = None  # the tenants covered (None: every tenant)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.rendered.to_dict(),
            "subject": self.subject,
            "tenants": list(self.tenants) if self.tenants is not None else None,
            "delivery": self.delivery,
        }


def report_name(base: str, scope: tenants.Scope) -> str:
    """A report's file name: ``base`` for every tenant, ``<base>_<slug>[_<slug>…]`` (slugs sorted) for
    some, so each scope is its own report with its own delivery record."""
    return base if scope is None else "_".join([base, *sorted(scope)])


def _tenant_parameter(scope: tenants.Scope) -> str | list[str] | None:
    """The notebooks' ``tenant`` parameter: None (every tenant), a slug, or a list of slugs."""
    if scope is None:
        return None
    return scope[0] if len(scope) == 1 else list(scope)


def _period(settings: Settings, date_from: date | None, date_to: date | None, days: int) -> tuple[date, date]:
    last = date_to or timeutil.today(settings.timezone) - timedelta(days=1)
    first = date_from or last - timedelta(days=days - 1)
    if first > last:
        raise InvalidArgument("--from is after --to")
    return first, last


def _problems_summary(
    engine: Engine,
    first: date,
    last: date,
    tz: str,
    thresholds: problemcalls.Thresholds,
    scope: tenants.Scope = None,
) -> str:
    found = problemcalls.find(engine, first, last, thresholds=thresholds, tz=tz, tenant=scope)
    total = metrics.summary(engine, first, last, tz=tz, tenant=scope).total_calls
    share = rutext.pct(100 * len(found) / total) if total else "—"
    lines = [f"Проблемных звонков: {rutext.num(len(found))} из {rutext.num(total)} ({share} всех звонков)."]
    for p in problemcalls.patterns(found)[:5]:
        of_calls = rutext.pct(100 * p.calls / total) if total else "—"
        lines.append(
            f"• {problemcalls.FLAGS[p.main]} · {labels.scenario(p.scenario)}: "
            f"{rutext.count(p.calls, 'звонок', 'звонка', 'звонков')} ({of_calls} всех звонков) — "
            f"{problemcalls.CAUSES[p.suggested_cause]}"
        )
    return "\n".join(lines)


def run(
    engine: Engine,
    settings: Settings,
    kind: str,
    *,
    day: date | None = None,
    week: date | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    test: str | None = None,
    baseline: str | None = None,
    thresholds: problemcalls.Thresholds | None = None,
    send: Sequence[str] = (),
    skip_delivered: bool = False,
    tenant: tenants.TenantArg = None,
    folder: str | None = None,
) -> ReportRun:
    """Render the ``kind`` report of ``tenant`` (a slug or several; default every tenant) and deliver
    it through the channels ``send`` (configured in settings; ConfigError before anything runs when
    one is not, InvalidArgument for an unknown tenant). ``folder``: render it as
    ``<reports_dir>/<kind>/<folder>/<name>.html``, the name without the tenants' slugs (a tenant's
    scheduled report to its own recipients: a delivery record of its own)."""
    channels = require_channels(settings, send) if send else {}
    tz = settings.timezone
    scope = tenants.scope(engine, tenant)
    if scope is not None and kind == "ab":
        raise InvalidArgument("the A/B report has no tenant: A/B tests and prompts are shared by every tenant")
    label = tenants.describe(engine, scope)
    of = f" — {label}" if scope is not None else ""  # the subject of a report of some tenants names them
    params: dict[str, Any]
    if kind == "daily":
        day = day or timeutil.today(tz) - timedelta(days=1)
        first = last = day  # the report's one day
        name, params = day.isoformat(), {"report_date": day.isoformat()}
        subject = f"Ежедневный отчёт колл-центра за {day:%d.%m.%Y}{of}"
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
        subject = f"Разбор проблемных звонков за {first:%d.%m.%Y} — {last:%d.%m.%Y}{of}"
    elif kind == "cost":
        first, last = _period(settings, date_from, date_to, 30)
        name = f"{first}_{last}"
        params = {"date_from": first.isoformat(), "date_to": last.isoformat(), "baseline": baseline}
        subject = f"Обзор стоимости звонков за {first:%d.%m.%Y} — {last:%d.%m.%Y}{of}"
    elif kind == "weekly":
        first, last = weeklyreport.week_bounds(week) if week else weeklyreport.last_full_week(timeutil.today(tz))
        name, params = f"{first}_{last}", {"week": first.isoformat(), "baseline": baseline}
        subject = f"Недельная сводка колл-центра за {first:%d.%m} — {last:%d.%m.%Y}{of}"
    elif kind == "ab":
        ab = pick_test(engine, test)
        name = f"{ab.test_name}-{timeutil.today(tz).isoformat()}"
        params = {"test": str(ab.id)}
        subject = f"Результаты A/B-теста «{ab.test_name}»"
    else:
        raise InvalidArgument(f"unknown report kind {kind!r}; one of: {', '.join(reports.KINDS)}")

    # the notebook's kernel sees this process's settings and database (the environment, never the notebook)
    env = {**settings_env(settings), "CCA_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    if kind != "ab":
        params["tenant"] = _tenant_parameter(scope)
        name = name if folder else report_name(name, scope)
    rendered = reports.render(
        kind, name, params, settings.resolved_reports_dir(), env=env, title=subject, tz=tz, folder=folder
    )
    if kind == "daily":
        summary = dailyreport.summary_text(engine, first, tz=tz, tenant=scope)
    elif kind == "problems":
        summary = _problems_summary(engine, first, last, tz, thresholds or problemcalls.Thresholds(), scope)
    elif kind == "weekly":
        summary = weeklyreport.summary_text(engine, first, tz=tz, tenant=scope)
    else:
        summary = subject
    delivery = {}
    if channels:
        delivery = reportsend.deliver(
            rendered, channels, subject=subject, summary=summary, skip_delivered=skip_delivered
        )
    return ReportRun(rendered, subject, summary, delivery, scope)
