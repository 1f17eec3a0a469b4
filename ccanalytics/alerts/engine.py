"""Alerts evaluated from the database, with durable delivery to Telegram and e-mail.

``evaluate`` checks every rule of ccanalytics.alerts.rules at an explicit instant. ``run`` turns the
result into state changes in one transaction — a new alert fires, a firing one is repeated once the
cooldown has passed, a condition that no longer holds is resolved — writing each event to
``alert_events`` and one ``alert_outbox`` row per channel. ``deliver`` (ccanalytics.alerts.outbox)
drains the outbox: rows are claimed with ``FOR UPDATE SKIP LOCKED`` (two schedulers never send one row
twice), a retryable failure moves the row's next attempt forward with a jittered exponential backoff
capped at minutes, so a channel outage delays delivery but loses nothing. Per alert (rule and key) and
channel the notifications go out in event order: a row waits while an earlier one of its alert is still
pending, so "resolved" never overtakes its "fired". A request that went out without an answer is
recorded as ``unknown`` and not re-sent (ccanalytics.alerts.delivery.outcome_unknown). ``run_alerts`` is
the scheduler's job: derive, run, deliver.

Ownership: with ``alerts_owner = prometheus`` the rules that have a Prometheus twin are left to
Alertmanager and only the database-only rules are evaluated (docs/alerts.md).

Tenants: every rule fires per tenant (ccanalytics.alerts.rules); a state and an event carry their
tenant's slug in ``details.tenant``. ``run(…, tenant=…)`` evaluates some tenants only and touches only
their alerts. Alerts kept from before (key ``all``, a bare scenario or day: no ``details.tenant``) are
upgraded by the first run over every tenant: with one tenant in the database their key becomes the
tenant's and the episode goes on; with several they are resolved with a note saying the alert is now
per network (``PER_TENANT_NOTE``) — the tenants still over the threshold fire on their own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Engine

from ccanalytics.alerts.messages import alert_title, compose
from ccanalytics.alerts.notify import channels_from_settings
from ccanalytics.alerts.outbox import BACKOFF_CAP_S, BACKOFF_S, MAX_ATTEMPTS, deliver
from ccanalytics.alerts.rulemodel import Context, Firing, Rule, Thresholds, aware, tenant_words
from ccanalytics.alerts.rules import RULES, RULES_BY_NAME
from ccanalytics.analytics import callmetrics, checkruns
from ccanalytics.core import clock, timeutil
from ccanalytics.core.config import Settings
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.db import tenants

log = logging.getLogger(__name__)

ALERTS_LOCK_KEY = 0x6363_616C  # "ccal": one run() at a time changes alert state
# the resolution of an alert kept from before alerts were per tenant, in a database of several tenants
PER_TENANT_NOTE = (
    "Алерт теперь считается отдельно по каждой сети, поэтому общий алерт по всем сетям закрыт. "
    "Если условие по-прежнему выполняется, придёт отдельное уведомление по каждой сети, где оно выполняется."
)


@dataclass(frozen=True)
class AlertConfig:
    thresholds: Thresholds = field(default_factory=Thresholds)
    owner: str = "database"  # database | prometheus
    cooldown: timedelta = timedelta(minutes=60)
    tz: str = timeutil.DEFAULT_TZ
    admin_url: str = "http://127.0.0.1:8050"
    channels: tuple[str, ...] = ()  # configured channels: notifications are queued for these
    max_attempts: int = MAX_ATTEMPTS
    backoff_s: float = BACKOFF_S
    backoff_cap_s: float = BACKOFF_CAP_S

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertConfig:
        return cls(
            thresholds=Thresholds.with_overrides(settings.alert_thresholds),
            owner=settings.alerts_owner,
            cooldown=timedelta(minutes=settings.alert_cooldown_minutes),
            tz=settings.timezone,
            admin_url=settings.admin_base_url,
            channels=tuple(channels_from_settings(settings)),
        )

    def rules(self) -> list[Rule]:
        """The rules this process owns."""
        return [r for r in RULES if self.owner == "database" or r.prometheus_twin is None]


@dataclass(frozen=True)
class Evaluation:
    firings: list[Firing]
    evaluated: list[str]  # rules checked successfully (their state may change)
    skipped: list[str]  # rules owned by Prometheus
    errors: dict[str, str]  # rule -> error (its state is left alone)
    scope: tenants.Scope = None  # the tenants evaluated (None: every tenant)
    names: dict[str, str] = field(default_factory=dict)  # every tenant of the database: slug -> name


@dataclass
class RunSummary:
    fired: int = 0
    repeated: int = 0
    resolved: int = 0
    firing: int = 0
    upgraded: int = 0  # alerts of before the per-tenant keys that took their tenant's key
    errors: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    firings: list[Firing] = field(default_factory=list)


def _config(config: AlertConfig | Settings) -> AlertConfig:
    return AlertConfig.from_settings(config) if isinstance(config, Settings) else config


# ------------------------------------------------------------------------------------ evaluate
def evaluate_all(
    engine: Engine, config: AlertConfig | Settings, now: datetime, *, tenant: tenants.TenantArg = None
) -> Evaluation:
    """Check every owned rule at ``now``, per tenant: of every tenant, or of ``tenant`` (a slug or
    several; an unknown slug raises InvalidArgument). A rule that fails (a bug, a missing table) is
    reported in ``errors`` and does not stop the others."""
    cfg, now = _config(config), aware(now)
    with engine.connect() as conn:
        scope = tenants.scope(conn, tenant)
        names = {t.slug: t.name for t in tenants.list_tenants(conn)}
    ctx = Context(now, cfg.thresholds, cfg.tz, cfg.admin_url, names=names, scope=scope)
    owned = cfg.rules()
    firings: list[Firing] = []
    evaluated: list[str] = []
    errors: dict[str, str] = {}
    with engine.connect() as conn:
        for rule in owned:
            try:
                with conn.begin():
                    firings.extend(rule.check(conn, ctx))
                evaluated.append(rule.name)
            except Exception as exc:  # one broken rule must not silence the others
                log.exception("alert rule %s failed", rule.name)
                errors[rule.name] = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    skipped = [r.name for r in RULES if r not in owned]
    return Evaluation(firings, evaluated, skipped, errors, scope, names)


def evaluate(
    engine: Engine, config: AlertConfig | Settings, now: datetime, *, tenant: tenants.TenantArg = None
) -> list[Firing]:
    """The alerts firing at ``now`` (read-only), of every tenant or of ``tenant``."""
    return evaluate_all(engine, config, now, tenant=tenant).firings


# ----------------------------------------------------------------------------------------- run
_UPSERT_FIRING = """
INSERT INTO alert_state AS s (rule, key, status, severity, first_fired_at, last_seen_at, last_notified_at,
                              resolved_at, notifications, last_value, details, updated_at)
VALUES (:rule, :key, 'firing', :severity, :now, :now, :now, NULL, 1, :value, :details, :now)
ON CONFLICT (rule, key) DO UPDATE SET
    status = 'firing', severity = EXCLUDED.severity, first_fired_at = :now, last_seen_at = :now,
    last_notified_at = :now, resolved_at = NULL, notifications = 1, last_value = :value, details = :details,
    updated_at = :now
"""


_SCOPED = "(CAST(:tenants AS text[]) IS NULL OR details->>'tenant' = ANY(CAST(:tenants AS text[])))"


def run(
    engine: Engine, config: AlertConfig | Settings, now: datetime, *, tenant: tenants.TenantArg = None
) -> RunSummary:
    """Evaluate at ``now`` and update alert state, history and outbox in one transaction. With
    ``tenant`` only those tenants are evaluated, and only their alerts fire, repeat or resolve."""
    cfg, now = _config(config), aware(now)
    ev = evaluate_all(engine, cfg, now, tenant=tenant)
    summary = RunSummary(errors=ev.errors, skipped=ev.skipped, firings=ev.firings)
    by_key = {(f.rule, f.key): f for f in ev.firings}
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": ALERTS_LOCK_KEY})
        # never move an alert's clock backwards (a manual run "--at" an earlier time, clock skew)
        latest = conn.execute(sa.text("SELECT max(last_seen_at) FROM alert_state")).scalar()
        stamp = max(now, latest) if latest else now
        if ev.scope is None:
            _upgrade_legacy(conn, cfg, ev, stamp, summary)
        states = {
            (s.rule, s.key): s
            for s in conn.execute(
                sa.text(
                    "SELECT * FROM alert_state WHERE rule = ANY(:rules) "  # noqa: S608 — _SCOPED is a constant
                    f"AND {_SCOPED} FOR UPDATE"
                ),
                {"rules": ev.evaluated, **tenants.params(ev.scope)},
            )
        }
        for (rule_name, key), f in by_key.items():
            rule, state = RULES_BY_NAME[rule_name], states.get((rule_name, key))
            details = Jsonb({"text": f.text, "link": f.link, "label": f.label, "tenant": f.tenant, **f.details})
            if state is None or (rule.kind == "condition" and state.status == "resolved"):
                conn.execute(
                    sa.text(_UPSERT_FIRING),
                    {
                        "rule": rule.name,
                        "key": key,
                        "severity": rule.severity,
                        "now": stamp,
                        "value": f.value,
                        "details": details,
                    },
                )
                _record(conn, cfg, rule, "fired", f, since=stamp, now=stamp)
                summary.fired += 1
                continue
            repeat = rule.kind == "condition" and (
                state.last_notified_at is None or stamp - state.last_notified_at >= cfg.cooldown
            )
            conn.execute(
                sa.text(
                    "UPDATE alert_state SET last_seen_at = :now, last_value = :value, details = :details, "
                    "updated_at = :now, last_notified_at = CASE WHEN :repeat THEN :now ELSE last_notified_at END, "
                    "notifications = notifications + CASE WHEN :repeat THEN 1 ELSE 0 END "
                    "WHERE rule = :rule AND key = :key"
                ),
                {"now": stamp, "value": f.value, "details": details, "repeat": repeat, "rule": rule.name, "key": key},
            )
            if repeat:
                _record(conn, cfg, rule, "repeated", f, since=state.first_fired_at, now=stamp)
                summary.repeated += 1
        for (rule_name, key), state in states.items():
            if state.status != "firing" or (rule_name, key) in by_key:
                continue
            if _resolve(conn, cfg, RULES_BY_NAME.get(rule_name), state, stamp):
                summary.resolved += 1
        summary.firing = conn.execute(sa.text("SELECT count(*) FROM alert_state WHERE status = 'firing'")).scalar_one()
        checkruns.record(conn, "alerts", timeutil.to_date(now, cfg.tz), now)
    return summary


def _resolve(conn, cfg: AlertConfig, rule: Rule | None, state, stamp: datetime, note: str | None = None) -> bool:
    """Mark a firing alert resolved; a condition's resolution is notified (events end silently)."""
    conn.execute(
        sa.text(
            "UPDATE alert_state SET status = 'resolved', resolved_at = :now, updated_at = :now "
            "WHERE rule = :rule AND key = :key"
        ),
        {"now": stamp, "rule": state.rule, "key": state.key},
    )
    if rule is None or rule.kind != "condition":
        return False
    d = state.details or {}
    last = Firing(
        rule.name, state.key, state.last_value, None, d.get("text", ""), d.get("link"), d.get("label", ""),
        tenant=d.get("tenant"),
    )  # fmt: skip
    _record(conn, cfg, rule, "resolved", last, since=state.first_fired_at, now=stamp, note=note)
    return True


def _upgrade_legacy(conn, cfg: AlertConfig, ev: Evaluation, stamp: datetime, summary: RunSummary) -> None:
    """Alerts still firing from before the per-tenant keys (key ``all``, a bare scenario or day; their
    details have no ``tenant``). With one tenant in the database the alert is that tenant's: its key
    (and its current episode's events, so delivery order holds) takes the tenant's slug and the
    episode goes on. With several the old alert covered them all: it is resolved with PER_TENANT_NOTE
    (an event ends silently) and each tenant still over the threshold fires on its own."""
    rules = [r for r in ev.evaluated if not RULES_BY_NAME[r].per_call]
    legacy = conn.execute(
        sa.text(
            "SELECT * FROM alert_state WHERE status = 'firing' AND rule = ANY(:rules) AND NOT (details ? 'tenant') "
            "ORDER BY first_fired_at, rule, key FOR UPDATE"
        ),
        {"rules": rules},
    ).all()
    for state in legacy:
        rule = RULES_BY_NAME[state.rule]
        if len(ev.names) == 1:
            (slug,) = ev.names
            key = slug if state.key == "all" else f"{slug}:{state.key}"
            taken = conn.execute(
                sa.text("SELECT 1 FROM alert_state WHERE rule = :rule AND key = :key"), {"rule": rule.name, "key": key}
            ).first()
            if taken is None:
                old_label = (state.details or {}).get("label") or ""
                label = ", ".join(x for x in (old_label, tenant_words(slug, ev.names)) if x)
                conn.execute(
                    sa.text(
                        "UPDATE alert_state SET key = :key, details = details || CAST(:extra AS jsonb) "
                        "WHERE rule = :rule AND key = :old"
                    ),
                    {"key": key, "old": state.key, "rule": rule.name, "extra": Jsonb({"tenant": slug, "label": label})},
                )
                conn.execute(
                    sa.text(
                        "UPDATE alert_events SET key = :key "
                        "WHERE rule = :rule AND key = :old AND episode_started_at = :since"
                    ),
                    {"key": key, "old": state.key, "rule": rule.name, "since": state.first_fired_at},
                )
                log.info("alert %s/%s is now tenant %s's: key %s", rule.name, state.key, slug, key)
                summary.upgraded += 1
                continue
        log.info("alert %s/%s over every tenant resolved: alerts are per tenant now", rule.name, state.key)
        if _resolve(conn, cfg, rule, state, stamp, note=PER_TENANT_NOTE):
            summary.resolved += 1


def _record(
    conn,
    cfg: AlertConfig,
    rule: Rule,
    event: str,
    f: Firing,
    *,
    since: datetime,
    now: datetime,
    note: str | None = None,
) -> int:
    """One alert_events row and its outbox rows (for the rule's channels that are configured)."""
    subject, message = compose(
        rule, event, f.text, f.link, f.label, since=since, now=now, tz=cfg.tz, thresholds=cfg.thresholds, note=note
    )
    channels = [c for c in rule.channels if c in cfg.channels]
    event_id = conn.execute(
        sa.text(
            "INSERT INTO alert_events (rule, key, event, severity, title, message, value, threshold, details, "
            "channels, episode_started_at, created_at) VALUES (:rule, :key, :event, :severity, :title, :message, "
            ":value, :threshold, :details, :channels, :since, :now) RETURNING id"
        ),
        {
            "rule": rule.name,
            "key": f.key,
            "event": event,
            "severity": rule.severity,
            "title": alert_title(rule, f.label),
            "message": message,
            "value": f.value,
            "threshold": f.threshold,
            "details": Jsonb({"link": f.link, "tenant": f.tenant, **f.details}),
            "channels": channels,
            "since": since,
            "now": now,
        },
    ).scalar_one()
    for channel in channels:
        conn.execute(
            sa.text(
                "INSERT INTO alert_outbox (event_id, channel, payload, next_attempt_at, created_at) "
                "VALUES (:e, :c, :p, :now, :now)"
            ),
            {"e": event_id, "c": channel, "p": Jsonb({"subject": subject, "text": message}), "now": now},
        )
    if not channels:
        log.warning("alert %s/%s %s: no configured channel (%s)", rule.name, f.key, event, ", ".join(rule.channels))
    return event_id


# ----------------------------------------------------------------------------- history and job
def history(engine: Engine, *, limit: int = 50, tenant: tenants.TenantArg = None) -> list[dict[str, Any]]:
    """The latest alert events, newest first, with the delivery status per channel; of every tenant or
    of ``tenant`` (events of before the per-tenant alerts name no tenant: they are left out then)."""
    if not 1 <= limit <= 10_000:
        raise InvalidArgument("limit must be between 1 and 10000")
    with engine.connect() as conn:
        scope = tenants.scope(conn, tenant)
        rows = conn.execute(
            sa.text(
                "SELECT e.id, e.rule, e.key, e.event, "  # noqa: S608 — _SCOPED is a constant filter; values bound
                "e.severity, e.title, e.message, e.value, e.threshold, "
                "e.created_at, e.episode_started_at, e.details->>'tenant' AS tenant, "
                "coalesce(jsonb_object_agg(o.channel, o.status) FILTER (WHERE o.id IS NOT NULL), '{}') AS delivery "
                "FROM alert_events e LEFT JOIN alert_outbox o ON o.event_id = e.id "
                f"WHERE {_SCOPED.replace('details', 'e.details')} "
                "GROUP BY e.id ORDER BY e.created_at DESC, e.id DESC LIMIT :limit"
            ),
            {"limit": limit, **tenants.params(scope)},
        )
        return [dict(r._mapping) for r in rows]


def purge(engine: Engine, older_than: datetime) -> int:
    """Delete alert events (and their outbox rows) and resolved states older than ``older_than``."""
    with engine.begin() as conn:
        n = conn.execute(sa.text("DELETE FROM alert_events WHERE created_at < :t"), {"t": older_than}).rowcount
        conn.execute(
            sa.text("DELETE FROM alert_state WHERE status = 'resolved' AND resolved_at < :t"), {"t": older_than}
        )
    return n


def derive_recent_metrics(engine: Engine, now: datetime, hours: int = 3) -> int:
    """Per-call metrics (response latency) for the recent calls that have none yet: the latency rule
    reads them. Failure is logged, not raised: the other rules still run."""
    try:
        with engine.begin() as conn:
            return callmetrics.derive(conn, now - timedelta(hours=hours), now + timedelta(minutes=1))
    except sa.exc.DBAPIError as exc:
        log.warning("deriving call metrics for alerts failed: %s", exc)
        return 0


def run_alerts(engine: Engine, settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """The scheduler's job (every minute): derive recent call metrics, evaluate and update alert state,
    then deliver due notifications."""
    now = aware(now) if now else clock.now()
    cfg = AlertConfig.from_settings(settings)
    channels = channels_from_settings(settings)
    derive_recent_metrics(engine, now)
    summary = run(engine, cfg, now)
    sent = deliver(
        engine,
        channels,
        now,
        max_attempts=cfg.max_attempts,
        backoff_s=cfg.backoff_s,
        backoff_cap_s=cfg.backoff_cap_s,
        tz=cfg.tz,
    )
    return {
        "fired": summary.fired,
        "repeated": summary.repeated,
        "resolved": summary.resolved,
        "firing": summary.firing,
        "delivered": sent.sent,
        "retried": sent.retried,
        "dead": sent.dead,
        "unknown": sent.unknown,
        "pending": sent.pending,
        "rule_errors": sorted(summary.errors),
    }
