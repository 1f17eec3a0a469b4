"""What an alert rule is and sees: its thresholds (``Thresholds``), the instant and tenants it is
evaluated for (``Context``), what it returns (``Firing``), the rule itself (``Rule``), and the Russian
number and word forms of the alerts' texts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, urlencode

import sqlalchemy as sa

from ccanalytics.analytics import signals
from ccanalytics.core import definitions, rutext, timeutil
from ccanalytics.core.errors import ConfigError, InvalidArgument
from ccanalytics.db import tenants
from ccanalytics.quality import problems


@dataclass(frozen=True)
class Thresholds:
    """Defaults of every alert threshold; keys of ``CCA_ALERT_THRESHOLDS`` are these field names."""

    transfer_rate: float = 0.5  # share of calls transferred in the window (> fires)
    transfer_min_calls: int = 10
    transfer_window_minutes: int = 60
    tool_errors: int = 5  # failed (not rejected) tool calls in the window (> fires)
    tool_errors_window_minutes: int = 10
    latency_p95_s: float = definitions.RESPONSE_CRITICAL_MS / 1000  # response latency p95 (> fires)
    latency_window_minutes: int = 15
    latency_min_replies: int = 20
    event_lookback_minutes: int = 60  # per-call events are looked for in tool calls this recent
    rejected_tool_calls_per_call: int = signals.REJECTED_TOOLS_PER_CALL  # (> fires)
    spend_ratio: float = 2.0  # spend / trailing average (> fires)
    spend_min_day_fraction: float = 0.25  # compare today once the baseline reached this share of a day
    spend_min_usd: float = 1.0  # never alert on spend below this
    baseline_days: int = 7  # trailing days of spend, cost per call and quality baselines
    scenario_transfer_rate: float = problems.TRANSFER_RATE  # per scenario over 24 h (≥ fires)
    scenario_min_calls: int = problems.MIN_CALLS
    stt_reask_factor: float = problems.REASK_FACTOR  # yesterday's re-asks per call / 14-day rate
    daily_alert_hour: int = 9  # facts about yesterday are sent from this local hour
    quality_drop: float = 0.1  # recent average below the baseline average by more than this
    quality_min_scored: int = 20
    quality_window_hours: int = 2
    judge_failures: int = 10  # calls failed scoring in 24 h (> fires)
    scoring_backlog: int = 200  # finished calls of today and yesterday unscored (> fires)
    cost_per_call_jump: float = 0.3  # average cost per call above the baseline by this share
    cost_min_calls: int = 30

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, float] | None) -> Thresholds:
        """Defaults with ``overrides`` applied; unknown keys and bad values raise ConfigError."""
        overrides = dict(overrides or {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise ConfigError(
                f"unknown alert threshold {', '.join(unknown)} in CCA_ALERT_THRESHOLDS; known: {', '.join(fields)}",
                details={"unknown": unknown},
            )
        values: dict[str, Any] = {}
        for name, value in overrides.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"alert threshold {name} must be a number ≥ 0, got {value!r}")
            if fields[name].type in ("int", int):
                if value != int(value):
                    raise ConfigError(f"alert threshold {name} must be a whole number, got {value!r}")
                value = int(value)
            values[name] = value
        th = dataclasses.replace(cls(), **values)
        if not 0 <= th.daily_alert_hour <= 23:
            raise ConfigError("alert threshold daily_alert_hour must be between 0 and 23")
        if th.baseline_days < 1:
            raise ConfigError("alert threshold baseline_days must be at least 1")
        return th


NO_TENANT = "no-tenant"  # the key (and key prefix) of calls whose tenant was deleted or never set


def tenant_words(tenant: str | None, names: Mapping[str, str]) -> str:
    """A tenant in words for a title or a text: «сеть «Шинсервіс»» (its display name; the slug when it
    has none), «звонки без сети» for calls without a tenant."""
    if not tenant:
        return "звонки без сети"
    name = names.get(tenant)
    return f"сеть «{name}»" if name else f"сеть {tenant}"


@dataclass(frozen=True)
class Context:
    now: datetime  # aware
    th: Thresholds
    tz: str = timeutil.DEFAULT_TZ
    admin_url: str = "http://127.0.0.1:8050"
    names: Mapping[str, str] = field(default_factory=dict)  # tenant slug -> display name (tenants.name)
    scope: tenants.Scope = None  # None: every tenant (and calls without one); else only these slugs

    def local(self, at: datetime, fmt: str = "%d.%m %H:%M") -> str:
        return at.astimezone(timeutil.zone(self.tz)).strftime(fmt)

    def span(self, start: datetime) -> str:
        return f"{self.local(start)}–{self.local(self.now, '%H:%M')}"

    def local_date(self, at: datetime | None = None) -> date:
        return (at or self.now).astimezone(timeutil.zone(self.tz)).date()

    @property
    def scoped(self) -> dict[str, Any]:
        """The bind parameter of :data:`ccanalytics.db.tenants.SQL` (alias ``c`` over cca_calls)."""
        return tenants.params(self.scope)

    @staticmethod
    def key(tenant: str | None, subject: str | None = None) -> str:
        """An alert key of a tenant (its slug; ``no-tenant``), with a subject after a colon."""
        base = tenant or NO_TENANT
        return f"{base}:{subject}" if subject is not None else base

    def tenant(self, tenant: str | None) -> str:
        """The tenant in words: «сеть «Шинсервіс»», or the calls without one."""
        return tenant_words(tenant, self.names)

    def lead(self, tenant: str | None) -> str:
        """The sentence a text starts with: «Сеть «Шинсервіс». »."""
        if not tenant:
            return "Звонки без сети (сеть удалена или не указана). "
        words = self.tenant(tenant)
        return f"{words[0].upper()}{words[1:]}. "

    def journal(self, start: datetime | None = None, *, tenant: str | None = None, **params: Any) -> str:
        """A link to the admin's call journal with filters (from/to are local days; the tenant's slug)."""
        q = {"from": self.local_date(start or self.now).isoformat(), "to": self.local_date().isoformat()}
        if tenant:
            q["tenant"] = tenant
        q.update({k: v for k, v in params.items() if v is not None})
        return f"{self.admin_url.rstrip('/')}/calls?{urlencode(q)}"

    def day_journal(self, day: date, *, tenant: str | None = None, **params: Any) -> str:
        """The journal of one local day (optionally of a tenant)."""
        q: dict[str, Any] = {"from": day, "to": day}
        if tenant:
            q["tenant"] = tenant
        q.update(params)
        return f"{self.admin_url.rstrip('/')}/calls?{urlencode(q)}"

    def call(self, call_id: str) -> str:
        return f"{self.admin_url.rstrip('/')}/calls/{quote(call_id)}"


@dataclass(frozen=True)
class Firing:
    """One alert instance firing at ``ctx.now``: the text is Russian, with numbers and the period."""

    rule: str
    key: str
    value: float | None
    threshold: float | None
    text: str
    link: str | None = None
    label: str = ""  # what the key means to a reader (a tenant, a scenario, a call), shown in the title
    details: dict[str, Any] = field(default_factory=dict)
    tenant: str | None = None  # the slug of the tenant whose calls fired it (None: calls without one)


@dataclass(frozen=True)
class Rule:
    name: str
    title: str
    severity: str  # critical | warning
    channels: tuple[str, ...]
    kind: str  # condition | event
    prometheus_twin: str | None
    condition: str  # English, for docs/alerts.md
    thresholds: tuple[str, ...]
    check: Callable[[sa.Connection, Context], list[Firing]]
    per_call: bool = False  # keyed by the call id (else by the tenant, ``shinservice[:subject]``)


def num(value: float, digits: int = 2) -> str:
    """Russian decimal format with ``digits`` decimals: ``0.6`` → ``0,60``, ``1234.5`` → ``1 234,50``."""
    return rutext.num(value, digits)


def pct(fraction: float) -> str:
    """A share as a percentage, one decimal at most: ``0.8426`` → ``84,3 %``, ``0.5`` → ``50 %``."""
    return rutext.share(fraction, 1)


def plural(n: int, one: str, few: str, many: str) -> str:
    """``n`` in Russian format with its word form: ``1 013 вызовов``."""
    return rutext.count(n, one, few, many)


def calls_acc(n: int) -> str:  # "оценить 21 звонок"
    return plural(n, "звонок", "звонка", "звонков")


def calls_gen(n: int) -> str:  # "из 21 звонка"
    return plural(n, "звонка", "звонков", "звонков")


def calls_loc(n: int) -> str:  # "в 21 звонке"
    return plural(n, "звонке", "звонках", "звонках")


def aware(now: datetime) -> datetime:
    """The instant ``now`` in UTC; a naive one is refused."""
    if now.tzinfo is None:
        raise InvalidArgument("the evaluation time must be timezone-aware")
    return now.astimezone(UTC)
