"""``ccanalytics doctor``: is this installation able to work? One line per dependency.

Checks the database (reachable, server version), the schema migrations, the partitions ahead, the
LLM judge endpoint (``GET /models`` with the key), SMTP (connect, EHLO, STARTTLS, login — no mail is
sent), Telegram (``getMe`` and ``getChat`` — no message is sent), Prometheus (``/-/ready`` and the
health of its scrape targets), and whether the lake and reports directories are writable.

Every check returns a ``Check`` with status ``ok``, ``warn`` (works, but something is off or not
configured) or ``fail`` (broken); none raises. Timeouts are short (5 s by default) so the whole run
stays quick when something hangs; network checks run in parallel.
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from ccanalytics.core import clock, timeutil
from ccanalytics.core.config import Settings

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_SERVER_MAJOR = 14
DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return f"{self.status:<4}  {self.name:<11} {self.detail}"


def _timed(name: str, fn: Callable[[], tuple[str, str]]) -> Check:
    """Run one check; an unexpected exception is a failure with its message, never a crash."""
    started = time.perf_counter()
    try:
        status, detail = fn()
    except Exception as exc:  # noqa: BLE001 — the doctor reports, it does not raise
        status, detail = FAIL, _reason(exc)
    return Check(name, status, detail, round(time.perf_counter() - started, 3))


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(getattr(exc, "orig", None) or exc) or type(exc).__name__
    return " ".join(str(text).strip().splitlines()[:1]) or type(exc).__name__


# ------------------------------------------------------------------------------------------ database
def doctor_engine(settings: Settings, timeout: float = DEFAULT_TIMEOUT_S) -> Engine:
    """An engine for the checks: one connection, a connect timeout and a statement timeout."""
    from ccanalytics.db.engine import engine_from_settings, resolve_url

    url = make_url(resolve_url(settings))
    if "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": str(max(1, round(timeout)))})
    return engine_from_settings(
        settings,
        url=url.render_as_string(hide_password=False),
        pool_size=1,
        statement_timeout_ms=int(timeout * 1000),
        application_name="ccanalytics-doctor",
    )


def check_database(engine: Engine) -> Check:
    from ccanalytics.db.engine import safe_url

    where = safe_url(engine.url.difference_update_query(["connect_timeout"]))

    def run() -> tuple[str, str]:
        started = time.perf_counter()
        try:
            with engine.connect() as conn:
                version = conn.execute(sa.text("SHOW server_version")).scalar_one()
                num = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one())
        except sa.exc.DBAPIError as exc:
            return FAIL, f"cannot connect to {where}: {_reason(exc)}"
        ms = (time.perf_counter() - started) * 1000
        detail = f"PostgreSQL {version.split()[0]} at {where} ({ms:.0f} ms)"
        if num // 10000 < MIN_SERVER_MAJOR:
            return WARN, detail + f"; PostgreSQL {MIN_SERVER_MAJOR} or newer is required"
        return OK, detail

    return _timed("database", run)


def check_migrations(engine: Engine) -> Check:
    from ccanalytics.db.migrate import discover, status

    def run() -> tuple[str, str]:
        st = status(engine)
        known = {m.version for m in discover()}
        if st.changed:
            versions = ", ".join(f"{v:03d}" for v in st.changed)
            return FAIL, f"applied migrations differ from the files: {versions} (never edit an applied migration)"
        if st.pending:
            names = ", ".join(m.path.name for m in st.pending[:3]) + (" …" if len(st.pending) > 3 else "")
            return FAIL, f"{len(st.applied)} applied, {len(st.pending)} pending ({names}): run ccanalytics db migrate"
        unknown = sorted(a.version for a in st.applied if a.version not in known)
        if unknown:
            versions = ", ".join(f"{v:03d}" for v in unknown)
            return WARN, f"the database has migrations this version does not know ({versions}): an older ccanalytics?"
        latest = max((a.version for a in st.applied), default=0)
        return OK, f"{len(st.applied)} applied, none pending (latest {latest:03d})"

    return _timed("migrations", run)


_BOUND = r"FROM \('([^']+)'\) TO \('([^']+)'\)"


def check_partitions(engine: Engine, months_ahead: int, *, today: date | None = None) -> Check:
    """Every partitioned call table has partitions for this UTC month and ``months_ahead`` after it.
    A missing current month fails (the call processor's INSERTs would fail); missing months ahead
    warn (the nightly ``partitions`` job creates them — or, on an attached database, the call
    processor's partition manager, and the advice says so)."""
    from ccanalytics.db.partitions import PARTITIONED_TABLES, add_months, month_start, processor_makes_partitions

    def run() -> tuple[str, str]:
        first = month_start(today or clock.now().date())
        wanted = [add_months(first, i) for i in range(months_ahead + 1)]
        problems: list[tuple[str, str]] = []
        plain: list[str] = []
        with engine.connect() as conn:
            theirs = processor_makes_partitions(conn)
            for table in PARTITIONED_TABLES:
                kind = conn.execute(
                    sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
                ).scalar()
                if kind is None:
                    problems.append((FAIL, f"{table} does not exist"))
                    continue
                if kind != "p":
                    plain.append(table)
                    continue
                rows = conn.execute(
                    sa.text(
                        """
                        SELECT b[1]::timestamptz AS lo, b[2]::timestamptz AS hi, is_default
                        FROM (SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid), :re) AS b,
                                     pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS is_default
                              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                              WHERE i.inhparent = to_regclass(:t)) s
                        """
                    ),
                    {"re": _BOUND, "t": table},
                ).all()
                ranges = [(r.lo, r.hi) for r in rows if r.lo is not None]
                has_default = any(r.is_default for r in rows)
                missing = [m for m in wanted if not _covered(m, add_months(m, 1), ranges)]
                if not missing:
                    continue
                months = ", ".join(m.strftime("%Y-%m") for m in missing)
                fallback = " (rows go to the default partition)" if has_default else ""
                severity = FAIL if missing[0] == first and not has_default else WARN
                problems.append((severity, f"{table} lacks {months}{fallback}"))
        if problems:
            status = FAIL if any(s == FAIL for s, _ in problems) else WARN
            advice = (
                ": the call processor's partition manager creates them (ccanalytics never does on an attached database)"
                if theirs
                else ": run ccanalytics db migrate"
            )
            return status, "; ".join(p for _, p in problems) + advice
        covered = [t for t in PARTITIONED_TABLES if t not in plain]
        detail = f"{', '.join(covered)} through {wanted[-1]:%Y-%m} ({months_ahead} months ahead)" if covered else ""
        if plain:
            detail += ("; " if detail else "") + f"not partitioned: {', '.join(plain)}"
        return OK, detail

    return _timed("partitions", run)


DATA_DAYS = 7  # the days the "data" check reads


def check_data(engine: Engine, *, tz: str, today: date | None = None, now: datetime | None = None) -> Check:
    """The call processor's rows of the last ``DATA_DAYS`` days that break expectations
    (:mod:`ccanalytics.db.dataproblems`): a warning with their counts, to take to the processor's team;
    ccanalytics reads them as they are."""
    from ccanalytics.db import dataproblems

    def run() -> tuple[str, str]:
        last = today or timeutil.today(tz)
        found = dataproblems.count(engine, last - timedelta(days=DATA_DAYS - 1), last, tz=tz, now=now)
        if not found.total:
            return OK, f"no odd rows of the call processor in the last {DATA_DAYS} days"
        return WARN, f"last {DATA_DAYS} days: {found.describe()} (read as they are; see docs/attach.md)"

    return _timed("data", run)


def check_tenant_reports(engine: Engine, settings: Settings) -> Check:
    """The tenants of CCA_TENANT_REPORTS exist in the database and have the channels they ask for
    (the global SMTP server, the global bot); a tenant that does not is a failure: its reports are not
    sent."""
    from ccanalytics.alerts import notify
    from ccanalytics.core.errors import ConfigError
    from ccanalytics.db import tenants

    def run() -> tuple[str, str]:
        known = {t.slug for t in tenants.list_tenants(engine)}
        problems = [
            f"unknown tenant {slug!r} (the database has {', '.join(sorted(known)) or 'none'}): its reports are not sent"
            for slug in settings.tenant_reports
            if slug not in known
        ]
        for slug in settings.tenant_reports:
            try:
                notify.tenant_settings(settings, slug)
            except ConfigError as exc:
                problems.append(exc.message)
        if problems:
            return FAIL, "; ".join(problems)
        return OK, "own reports: " + ", ".join(
            f"{slug} ({', '.join(t.kinds)})" for slug, t in settings.tenant_reports.items()
        )

    return _timed("tenants", run)


def _covered(lo: date, hi: date, ranges: list[tuple[datetime, datetime]]) -> bool:
    start = datetime(lo.year, lo.month, lo.day, tzinfo=UTC)
    end = datetime(hi.year, hi.month, hi.day, tzinfo=UTC)
    return any(a <= start and end <= b for a, b in ranges)


def _not_checked(name: str) -> Check:
    return Check(name, WARN, "not checked: the database is unreachable")


# ---------------------------------------------------------------------------------------------- judge
def check_judge(base_url: str | None, api_key: str | None, model: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> Check:
    """``GET {base_url}/models`` with the key (no tokens spent). No key: the offline rule-based judge."""

    def run() -> tuple[str, str]:
        if not api_key:
            return OK, "offline rule-based judge (CCA_JUDGE_API_KEY is empty)"
        import openai

        client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
        where = str(client.base_url).rstrip("/")
        try:
            models = [m.id for m in client.models.list().data]
        except openai.AuthenticationError:
            return FAIL, f"{where}: the API key was refused (401)"
        except openai.PermissionDeniedError:
            return FAIL, f"{where}: the API key may not list models (403)"
        except openai.APIConnectionError as exc:
            return FAIL, f"{where}: unreachable ({_reason(exc.__cause__ or exc)})"
        except openai.APIStatusError as exc:
            if exc.status_code in (404, 405, 501):
                return WARN, f"{where}: reachable, but it has no /models (HTTP {exc.status_code}); key not verified"
            return FAIL, f"{where}: HTTP {exc.status_code}"
        if model not in models:
            return WARN, f"{where}: key accepted, but model {model} is not among its {len(models)} models"
        return OK, f"{where}: key accepted, model {model} available"

    return _timed("judge", run)


# ----------------------------------------------------------------------------------------------- SMTP
def check_smtp(
    host: str | None,
    port: int,
    *,
    user: str | None = None,
    password: str | None = None,
    starttls: bool = True,
    recipients: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Check:
    """Connect, EHLO, STARTTLS when configured and offered, log in when a user is set. No mail is sent."""

    def run() -> tuple[str, str]:
        if not host:
            return WARN, "not configured (CCA_SMTP_HOST is empty): e-mail reports and alerts are off"
        steps: list[str] = []
        warnings: list[str] = []
        smtp_cls = smtplib.SMTP_SSL if port == 465 else smtplib.SMTP
        try:
            with smtp_cls(host, port, timeout=timeout) as smtp:
                code, _ = smtp.ehlo()
                if code != 250:
                    return FAIL, f"{host}:{port}: EHLO answered {code}"
                steps.append("EHLO")
                encrypted = smtp_cls is smtplib.SMTP_SSL
                if encrypted:
                    steps.append("TLS")
                elif starttls and smtp.has_extn("starttls"):
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                    encrypted = True
                    steps.append("STARTTLS")
                elif starttls:
                    warnings.append("the server offers no STARTTLS: mail goes unencrypted")
                if user:
                    if not encrypted:
                        warnings.append("the password is sent without TLS")
                    smtp.login(user, password or "")
                    steps.append(f"login as {user}")
        except smtplib.SMTPAuthenticationError as exc:
            return FAIL, f"{host}:{port}: login as {user} refused ({exc.smtp_code})"
        except smtplib.SMTPNotSupportedError:
            return FAIL, f"{host}:{port}: the server does not support AUTH (CCA_SMTP_USER is set)"
        except (smtplib.SMTPException, OSError) as exc:
            return FAIL, f"{host}:{port}: {_reason(exc)}"
        if not recipients:
            warnings.append("CCA_EMAIL_TO is empty: nothing is sent")
        detail = f"{host}:{port}: " + ", ".join(steps) + (f"; {'; '.join(warnings)}" if warnings else "")
        return (WARN if warnings else OK), detail

    return _timed("smtp", run)


# ------------------------------------------------------------------------------------------- Telegram
def check_telegram(
    api_url: str, token: str | None, chat_id: str | None, *, timeout: float = DEFAULT_TIMEOUT_S
) -> Check:
    """``getMe`` (is the token valid?) and ``getChat`` (can the bot see the chat?). No message is sent."""

    def run() -> tuple[str, str]:
        if not token or not chat_id:
            missing = " and ".join(
                n for n, v in (("CCA_TELEGRAM_BOT_TOKEN", token), ("CCA_TELEGRAM_CHAT_ID", chat_id)) if not v
            )
            return WARN, f"not configured ({missing} empty): Telegram alerts and reports are off"
        base = api_url.rstrip("/")
        ok, answer = _telegram(f"{base}/bot{token}/getMe", {}, timeout)
        if not ok:
            return FAIL, f"{base}: getMe: {answer}"
        bot = "@" + str((answer or {}).get("username") or (answer or {}).get("first_name") or "bot")
        ok, chat = _telegram(f"{base}/bot{token}/getChat", {"chat_id": chat_id}, timeout)
        if not ok:
            return FAIL, f"{base}: bot {bot}; chat {chat_id}: {chat}"
        title = (chat or {}).get("title") or (chat or {}).get("username") or (chat or {}).get("type") or ""
        return OK, f"{base}: bot {bot}, chat {chat_id}" + (f" ({title})" if title else "")

    return _timed("telegram", run)


def _telegram(url: str, payload: dict[str, Any], timeout: float) -> tuple[bool, Any]:
    """(True, result) or (False, a readable reason without the token)."""
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            description = json.loads(exc.read() or b"{}").get("description")
        except ValueError:
            description = None
        return False, f"HTTP {exc.code} {description or exc.reason}"
    except (OSError, ValueError) as exc:
        return False, _reason(getattr(exc, "reason", exc))
    if not isinstance(answer, dict) or not answer.get("ok"):
        return False, "not a Bot API answer"
    return True, answer.get("result")


# ----------------------------------------------------------------------------------------- Prometheus
def check_prometheus(url: str | None, *, timeout: float = DEFAULT_TIMEOUT_S) -> Check:
    """``GET {url}/-/ready``, then the health of its active scrape targets."""

    def run() -> tuple[str, str]:
        if not url:
            return WARN, "not configured (CCA_PROMETHEUS_URL is empty): reachability not checked"
        base = url.rstrip("/")
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            return FAIL, f"{base}: not ready (HTTP {exc.code})"
        except OSError as exc:
            return FAIL, f"{base}: unreachable ({_reason(getattr(exc, 'reason', exc))})"
        try:
            with urllib.request.urlopen(f"{base}/api/v1/targets?state=active", timeout=timeout) as response:
                targets = json.loads(response.read())["data"]["activeTargets"]
        except (OSError, ValueError, KeyError, TypeError):
            return OK, f"{base}: ready (targets not readable)"
        down = sorted({t.get("labels", {}).get("job", "?") for t in targets if t.get("health") == "down"})
        up = sum(1 for t in targets if t.get("health") == "up")
        if down:
            return WARN, f"{base}: ready; {up} of {len(targets)} targets up, down: {', '.join(down)}"
        return OK, f"{base}: ready; {up} of {len(targets)} targets up"

    return _timed("prometheus", run)


# ---------------------------------------------------------------------------------------- directories
_DAY_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def check_directory(name: str, path: Path, *, lake: bool = False, today: date | None = None) -> Check:
    """Writable (a temporary file is created and removed), or creatable when it does not exist yet.
    For the lake: the last exported day (a warning when the nightly export is more than 2 days behind)."""

    def run() -> tuple[str, str]:
        if path.exists() and not path.is_dir():
            return FAIL, f"{path} is not a directory"
        if not path.exists():
            parent = next((p for p in path.parents if p.exists()), None)
            if parent is None or not os.access(parent, os.W_OK | os.X_OK):
                return FAIL, f"{path} does not exist and {parent} is not writable"
            return OK, f"{path} will be created (in {parent}, writable)"
        try:
            with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-", delete=True):
                pass
        except OSError as exc:
            return FAIL, f"{path} is not writable: {_reason(exc)}"
        if not lake:
            return OK, f"{path} writable"
        days = sorted(m.group(1) for p in _list(path / "calls") if (m := _DAY_DIR.match(p.name)))
        if not days:
            return OK, f"{path} writable; nothing exported yet"
        last = date.fromisoformat(days[-1])
        detail = f"{path} writable; {len(days)} days exported, the last {last}"
        if (today or clock.now().date()) - last > timedelta(days=2):
            return WARN, detail + ": the nightly lake export is behind"
        return OK, detail

    return _timed(name, run)


def _list(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except OSError:
        return []


# -------------------------------------------------------------------------------------------- all
def run_checks(
    settings: Settings,
    *,
    engine: Engine | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    prometheus_url: str | None = None,
) -> list[Check]:
    """Every check, in a fixed order; the database chain and the network checks run in parallel.
    ``prometheus_url`` overrides the CCA_PROMETHEUS_URL setting."""
    own_engine = engine is None
    tenant_check = ("tenants",) if settings.tenant_reports else ()  # only when tenants have reports of their own
    after_database = ("migrations", "partitions", "data", *tenant_check)

    def database_chain() -> list[Check]:
        nonlocal engine
        try:
            engine = engine or doctor_engine(settings, timeout)
        except Exception as exc:  # noqa: BLE001 — a bad URL or an embedded server that cannot start
            return [Check("database", FAIL, _reason(exc)), *(_not_checked(n) for n in after_database)]
        try:
            db = check_database(engine)
            if db.status == FAIL:
                return [db, *(_not_checked(n) for n in after_database)]
            migrations = check_migrations(engine)
            if migrations.status == FAIL:
                later = [Check(n, WARN, "not checked: the schema is not migrated") for n in ("data", *tenant_check)]
            else:
                later = [check_data(engine, tz=settings.timezone)]
                later += [check_tenant_reports(engine, settings)] if tenant_check else []
            return [db, migrations, check_partitions(engine, settings.partitions_ahead_months), *later]
        finally:
            if own_engine:
                engine.dispose()

    secret = lambda s: s.get_secret_value() if s is not None else None
    others: list[Callable[[], Check]] = [
        lambda: check_judge(
            settings.judge_base_url, secret(settings.judge_api_key), settings.judge_model, timeout=timeout
        ),
        lambda: check_smtp(
            settings.smtp_host,
            settings.smtp_port,
            user=settings.smtp_user,
            password=secret(settings.smtp_password),
            starttls=settings.smtp_starttls,
            recipients=settings.email_to,
            timeout=timeout,
        ),
        lambda: check_telegram(
            settings.telegram_api_url, secret(settings.telegram_bot_token), settings.telegram_chat_id, timeout=timeout
        ),
        lambda: check_prometheus(prometheus_url or settings.prometheus_url, timeout=timeout),
        lambda: check_directory("lake", settings.resolved_lake_dir(), lake=True),
        lambda: check_directory("reports", settings.resolved_reports_dir()),
    ]
    with ThreadPoolExecutor(max_workers=1 + len(others)) as pool:
        chain = pool.submit(database_chain)
        rest = [pool.submit(fn) for fn in others]
        return [*chain.result(), *(f.result() for f in rest)]


def failed(checks: list[Check]) -> bool:
    return any(c.status == FAIL for c in checks)
