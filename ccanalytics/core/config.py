"""Configuration, read once at the edges (CLI, web app, scheduler, notebooks' ``connect()``).

Every setting is an environment variable with the ``CCA_`` prefix. Library functions never read the
environment themselves: they take explicit arguments, and the edges pass values from ``Settings``.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_core import to_jsonable_python
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from ccanalytics.core import timeutil
from ccanalytics.core.definitions import AUTO_FAIL_CRITERIA, LOW_QUALITY
from ccanalytics.core.errors import ConfigError

PROJECT_MARKERS = (".ccanalytics", "pyproject.toml")


def find_project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` holding a ``.ccanalytics`` folder or a
    ``pyproject.toml`` of this project; ``start`` itself when there is none.

    Notebooks run from ``notebooks/`` and reports from elsewhere, yet all of them must find the same
    embedded database as ``make demo``.
    """
    start = (start or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / ".ccanalytics").is_dir():
            return directory
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file() and 'name = "ccanalytics"' in pyproject.read_text(errors="ignore"):
            return directory
    return start


# the report kinds the scheduler sends (ccanalytics.ops.jobs); a tenant's report settings choose among them
SCHEDULED_REPORT_KINDS = ("daily", "problems", "weekly")
# threads per worker process of `ccanalytics serve`: with one worker per core, about two requests in flight
# per core (webapp/serving.py, docs/deployment.md)
DEFAULT_SERVE_THREADS = 2
_EMAIL = re.compile(r"[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\"]+")
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]*")  # a file name too: <reports_dir>/<kind>/<slug>/
_TENANT_REPORT_KEYS = ("emails", "telegram_chat_id", "kinds")


class TenantReports(BaseModel):
    """Where one tenant's own scheduled reports go (an entry of CCA_TENANT_REPORTS): its e-mail
    recipients and Telegram chat (the SMTP server and the bot stay the global ones) and the kinds it
    receives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    emails: tuple[str, ...] = ()
    telegram_chat_id: str | None = None
    kinds: tuple[str, ...] = SCHEDULED_REPORT_KINDS


def _tenant_entry(slug: str, entry: Any) -> TenantReports:
    """One tenant's entry of CCA_TENANT_REPORTS; ValueError naming the tenant and what is wrong."""
    kinds_text = ", ".join(SCHEDULED_REPORT_KINDS)
    if not isinstance(entry, dict):
        raise ValueError(f"tenant {slug!r}: a JSON object is expected, not {entry!r}")
    unknown = [k for k in entry if k not in _TENANT_REPORT_KEYS]
    if unknown:
        raise ValueError(f"tenant {slug!r}: unknown key {unknown[0]!r} (keys: {', '.join(_TENANT_REPORT_KEYS)})")
    emails = entry.get("emails") or []
    if not isinstance(emails, list):
        raise ValueError(f"tenant {slug!r}: emails must be a list of addresses")
    bad = [e for e in emails if not isinstance(e, str) or not _EMAIL.fullmatch(e.strip())]
    if bad:
        raise ValueError(f"tenant {slug!r}: {bad[0]!r} is not an e-mail address")
    chat = entry.get("telegram_chat_id")
    if chat is not None and (isinstance(chat, bool) or not isinstance(chat, str | int) or not str(chat).strip()):
        raise ValueError(f'tenant {slug!r}: telegram_chat_id must be a chat id ("-100…") or @channel')
    kinds = entry.get("kinds", list(SCHEDULED_REPORT_KINDS))
    if not isinstance(kinds, list) or not kinds:
        raise ValueError(f"tenant {slug!r}: kinds must be a non-empty list of {kinds_text}")
    odd = [k for k in kinds if k not in SCHEDULED_REPORT_KINDS]
    if odd:
        raise ValueError(f"tenant {slug!r}: unknown report kind {odd[0]!r} (kinds: {kinds_text})")
    if not emails and chat is None:
        raise ValueError(f"tenant {slug!r}: no recipients (give emails, telegram_chat_id or both)")
    return TenantReports(
        emails=tuple(dict.fromkeys(e.strip() for e in emails)),
        telegram_chat_id=str(chat).strip() if chat is not None else None,
        kinds=tuple(dict.fromkeys(kinds)),
    )


def _tenant_reports(raw: Any) -> dict[str, TenantReports]:
    """CCA_TENANT_REPORTS checked entry by entry (slugs in lower case)."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ValueError("not valid JSON") from None
    if not isinstance(raw, dict):
        raise ValueError('a JSON object is expected: {"<tenant slug>": {"emails": [...], ...}}')
    out: dict[str, TenantReports] = {}
    for key, entry in raw.items():
        slug = str(key).strip().lower()
        if not _SLUG.fullmatch(slug):
            raise ValueError(f"{key!r} is not a tenant slug (latin letters, digits, - and _)")
        if slug in out:
            raise ValueError(f"tenant {slug!r} is given twice")
        out[slug] = entry if isinstance(entry, TenantReports) else _tenant_entry(slug, entry)
    return out


class Settings(BaseSettings):
    """All settings of ccanalytics. See docs/configuration.md for the reference."""

    model_config = SettingsConfigDict(env_prefix="CCA_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://user:pass@host/db). Empty: the embedded server.",
    )
    data_dir: Path | None = Field(
        default=None,
        description="Working directory for local state; default <project root>/.ccanalytics.",
    )
    pg_data: Path | None = Field(
        default=None,
        description="Data directory of the embedded PostgreSQL; default <data_dir>/pg.",
    )
    embedded_database: str = Field(default="ccanalytics", description="Database name inside the embedded server.")
    timezone: str = Field(
        default=timeutil.DEFAULT_TZ, description="Business time zone: days, hours and reports use it."
    )
    db_pool_size: int = Field(default=5, ge=1, le=100, description="Connections per process.")
    statement_timeout_ms: int = Field(
        default=60_000, ge=0, description="Per-statement timeout for library queries (0: none)."
    )
    partitions_ahead_months: int = Field(
        default=3, ge=1, le=24, description="Monthly partitions created ahead of the current month."
    )
    quality_source: Literal["ccanalytics", "processor"] = Field(
        default="ccanalytics",
        description="Whose quality score every figure, report, alert and page uses: ccanalytics (its judge's "
        "score; the call processor's for a call not scored yet) or processor (the score the call processor "
        "recorded). Both are always shown side by side on the call page. See docs/attach.md.",
    )
    cost_source: Literal["ccanalytics", "processor"] = Field(
        default="ccanalytics",
        description="Whose cost of a call every figure, report, alert and page uses: ccanalytics (its price "
        "from the usage at dated prices; the processor's for a call not priced yet) or processor (the cost the "
        "call processor recorded).",
    )
    read_only: bool = Field(
        default=False,
        description="Read-only mode (a SELECT-only role or a read replica): sessions start read-only; "
        "reading works without migrations or partition upkeep (a schema that is behind is a one-line error); "
        "API token use is not recorded; password logins and every change are refused with a one-line error. "
        "See docs/attach.md.",
    )
    # --- quality scoring
    judge_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint of the LLM judge (empty: api.openai.com)."
    )
    judge_model: str = Field(default="gpt-4o-mini", description="Model of the LLM judge.")
    judge_api_key: SecretStr | None = Field(
        default=None,
        description="API key of the LLM judge. Empty: the deterministic rule-based judge scores calls (offline).",
    )
    judge_timeout_s: float = Field(default=60.0, gt=0, le=600, description="Timeout of one judge request, seconds.")
    judge_max_attempts: int = Field(default=4, ge=1, le=20, description="Attempts per call before it is marked failed.")
    judge_workers: int = Field(default=8, ge=1, le=64, description="Concurrent judge requests per scoring process.")
    judge_price_input_per_1m: float = Field(
        default=0.15, ge=0, description="Judge input price, USD per 1M tokens (its own cost per call)."
    )
    judge_price_output_per_1m: float = Field(default=0.60, ge=0, description="Judge output price, USD per 1M tokens.")
    quality_weights: dict[str, float] = Field(
        default_factory=dict,
        description='Weights of the quality criteria, JSON (e.g. {"call_resolved_without_human": 2}); '
        "unlisted criteria keep their defaults.",
    )
    quality_auto_fail: list[str] = Field(
        default_factory=lambda: list(AUTO_FAIL_CRITERIA),
        description="Criteria that fail the whole call when failed (score < 0.5), JSON list; [] for none.",
    )
    pricing_file: Path | None = Field(
        default=None,
        description="Prices with effective dates (YAML); default: the bundled ccanalytics/cost/pricing.yaml.",
    )
    cost_baseline: str | None = Field(
        default=None,
        description="The phase-1 baseline period for cost reports, FROM:TO (e.g. 2026-03-01:2026-03-31).",
    )
    quality_review_below: float = Field(
        default=LOW_QUALITY, ge=0, le=1, description="Calls scoring below this enter the manual review queue."
    )
    # --- admin web app: serving (webapp/serving.py)
    serve_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Worker processes of `ccanalytics serve` and the demo (gunicorn). 0: one per core, at least 2, "
        "at most 8.",
    )
    serve_threads: int = Field(
        default=DEFAULT_SERVE_THREADS,
        ge=1,
        le=64,
        description="Threads per worker process of `ccanalytics serve` (requests in flight).",
    )
    # --- admin web app: sessions and login
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs the admin's session cookies. Empty: a random key is generated once and kept in the "
        "file secret_key of the data directory (mode 0600). Set it when several hosts serve one admin.",
    )
    session_hours: int = Field(
        default=12, ge=1, le=720, description="An admin session ends after this many hours without a request."
    )
    cookie_secure: bool = Field(
        default=False, description="Send the session cookie over HTTPS only (set true when served behind TLS)."
    )
    trusted_proxies: int = Field(
        default=0,
        ge=0,
        le=5,
        description="Reverse proxies in front of the admin whose X-Forwarded-For/-Proto are trusted "
        "(the client address is what login rate limiting counts).",
    )
    login_max_failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Failed logins of one client on one account within the window before growing delays start "
        "(1 s, doubling, up to the window; never a lockout).",
    )
    login_max_failures_per_ip: int = Field(
        default=20,
        ge=1,
        le=10_000,
        description="Failed logins of one client address on any accounts within the window before growing "
        "delays start.",
    )
    login_window_minutes: int = Field(
        default=15,
        ge=1,
        le=1440,
        description="The login throttling window, minutes: older failures are forgotten; also the longest delay.",
    )

    # --- reports, the lake and retention
    reports_dir: Path | None = Field(
        default=None,
        description="Where rendered reports go (<dir>/<kind>/<date>.html); default <project root>/reports.",
    )
    lake_dir: Path | None = Field(
        default=None,
        description="Root of the Parquet lake (Hive-partitioned by date); default <data_dir>/lake.",
    )
    admin_base_url: str = Field(
        default="http://127.0.0.1:8050",
        description="Public address of the admin; reports and alert messages link to calls under it.",
    )
    prometheus_url: str | None = Field(
        default=None,
        description="Prometheus as ccanalytics reaches it (e.g. http://127.0.0.1:9090); `ccanalytics doctor` "
        "checks /-/ready and its scrape targets. Empty: not checked.",
    )
    grafana_url: str | None = Field(
        default=None, description="Grafana address for links from the admin dashboard and alert messages."
    )
    retention_transcripts_days: int = Field(
        default=90, ge=7, le=3650, description="Turns and tool calls (transcripts) older than this are purged."
    )
    retention_aggregates_days: int = Field(
        default=365, ge=30, le=3650, description="daily_stats, findings and alert history older than this are purged."
    )
    # --- delivery channels (alerts and reports)
    smtp_host: str | None = Field(default=None, description="SMTP server for e-mail (empty: e-mail is not sent).")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP port.")
    smtp_user: str | None = Field(default=None, description="SMTP login (empty: no authentication).")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_starttls: bool = Field(default=True, description="Upgrade the SMTP connection with STARTTLS when offered.")
    smtp_from: str = Field(default="ccanalytics@localhost", description="Sender address of e-mails.")
    email_to: list[str] = Field(
        default_factory=list, description='Recipients of reports and e-mail alerts, JSON list (["a@x.ua"]).'
    )
    telegram_bot_token: SecretStr | None = Field(
        default=None, description="Telegram Bot API token (empty: Telegram is not used)."
    )
    telegram_chat_id: str | None = Field(default=None, description="Telegram chat that receives alerts and reports.")
    telegram_api_url: str = Field(
        default="https://api.telegram.org", description="Telegram Bot API base URL (a proxy or a test server)."
    )
    notify_timeout_s: float = Field(default=20.0, gt=0, le=300, description="Timeout of one delivery attempt, seconds.")
    tenant_reports: dict[str, TenantReports] = Field(
        default_factory=dict,
        description="Each tenant's own scheduled reports, JSON: "
        '{"<tenant slug>": {"emails": ["a@x.ua"], "telegram_chat_id": "-100…", "kinds": ["daily", "problems", '
        '"weekly"]}} (kinds: default all). A tenant listed here also gets the reports of its kinds scoped to '
        "its own calls, through the global SMTP server and Telegram bot; the global recipients keep the "
        "report of every tenant. See docs/reports.md.",
    )
    # --- alerts evaluated from the database
    alerts_owner: str = Field(
        default="database",
        description="Who owns alerts that both the database and Prometheus can express: database (the "
        "scheduler evaluates and delivers them; the embedded default) or prometheus (Alertmanager "
        "delivers them and the scheduler evaluates only the database-only rules).",
    )
    alert_cooldown_minutes: int = Field(
        default=60, ge=1, le=10_080, description="A firing alert is repeated no more often than this."
    )
    alert_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description='Overrides of alert thresholds, JSON (e.g. {"transfer_rate": 0.6}); see docs/alerts.md.',
    )

    @field_validator("tenant_reports", mode="before")
    @classmethod
    def _tenant_reports(cls, value: Any) -> dict[str, TenantReports]:
        return _tenant_reports(value)

    @field_validator("alerts_owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        if value not in ("database", "prometheus"):
            raise ValueError("alerts_owner must be database or prometheus")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (KeyError, ValueError, OSError):  # unknown zone; a malformed key; a directory ("Europe")
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    def resolved_data_dir(self) -> Path:
        return (self.data_dir or find_project_root() / ".ccanalytics").resolve()

    def resolved_pg_data(self) -> Path:
        return (self.pg_data or self.resolved_data_dir() / "pg").resolve()

    def resolved_reports_dir(self) -> Path:
        return (self.reports_dir or find_project_root() / "reports").resolve()

    def resolved_lake_dir(self) -> Path:
        return (self.lake_dir or self.resolved_data_dir() / "lake").resolve()


def settings_env(settings: Settings, *, include_secrets: bool = False) -> dict[str, str]:
    """The settings that differ from their defaults as ``CCA_*`` environment variables, for a child
    process (a report notebook's kernel) that must see what this process sees. Secrets are left out
    unless asked for; the database URL counts as one."""
    out: dict[str, str] = {}
    for name, info in Settings.model_fields.items():
        value = getattr(settings, name)
        if value == info.get_default(call_default_factory=True):
            continue
        if isinstance(value, SecretStr) or name == "database_url":
            if not include_secrets:
                continue
            value = value.get_secret_value() if isinstance(value, SecretStr) else value
        out[f"CCA_{name.upper()}"] = (
            json.dumps(to_jsonable_python(value)) if isinstance(value, dict | list) else str(value)
        )
    return out


def load_settings() -> Settings:
    """Settings from the environment; a value that does not parse is a ConfigError naming its variable
    (``invalid setting CCA_X: …``), as the CLI prints it."""
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        message = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"invalid setting CCA_{str(err['loc'][0]).upper()}: {message}") from None
    except SettingsError as exc:  # a JSON setting that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        raise ConfigError(f"invalid setting CCA_{field[1].upper() if field else '?'}: not valid JSON") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()


def reference_markdown() -> str:
    """docs/configuration.md, generated from ``Settings`` (a test keeps the file in sync)."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `ccanalytics/core/config.py` by `python -m ccanalytics.core.config > docs/configuration.md`;",
        "a test fails when this file and the code disagree. Every setting is an environment variable;",
        "secrets come only from the environment.",
        "",
        "| variable | default | description |",
        "|---|---|---|",
    ]
    for name, info in Settings.model_fields.items():
        value = info.get_default(call_default_factory=True)
        default = "—" if value is None else f"`{json.dumps(value) if isinstance(value, dict | list) else value}`"
        lines.append(f"| `CCA_{name.upper()}` | {default} | {info.description or ''} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(reference_markdown(), end="")
