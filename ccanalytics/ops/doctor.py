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

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.engine import Engine

from ccanalytics.core.config import Settings
from ccanalytics.ops.doctorcheck import DEFAULT_TIMEOUT_S, FAIL, OK, WARN, Check, reason
from ccanalytics.ops.doctordb import (
    DATA_DAYS,
    MIN_SERVER_MAJOR,
    check_data,
    check_database,
    check_migrations,
    check_partitions,
    check_tenant_reports,
    doctor_engine,
)
from ccanalytics.ops.doctorservices import check_directory, check_judge, check_prometheus, check_smtp, check_telegram

# the checks live in doctorcheck, doctordb and doctorservices; ``ccanalytics.doctor`` (an old name,
# ccanalytics.MOVED) and this module keep every one of them importable from here
__all__ = [
    "DATA_DAYS",
    "DEFAULT_TIMEOUT_S",
    "FAIL",
    "MIN_SERVER_MAJOR",
    "OK",
    "WARN",
    "Check",
    "check_data",
    "check_database",
    "check_directory",
    "check_judge",
    "check_migrations",
    "check_partitions",
    "check_prometheus",
    "check_smtp",
    "check_telegram",
    "check_tenant_reports",
    "doctor_engine",
    "failed",
    "run_checks",
]


def _not_checked(name: str) -> Check:
    return Check(name, WARN, "not checked: the database is unreachable")


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
            return [Check("database", FAIL, reason(exc)), *(_not_checked(n) for n in after_database)]
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
