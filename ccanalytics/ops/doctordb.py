"""The doctor's checks of the database: reachable, its version, the migrations, the partitions ahead,
the call processor's odd rows, and the tenants that have reports of their own."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from ccanalytics.alerts import notify
from ccanalytics.core import clock, timeutil
from ccanalytics.core.config import Settings
from ccanalytics.core.errors import ConfigError
from ccanalytics.db import dataproblems, migrations, tenants
from ccanalytics.db.engine import engine_from_settings, resolve_url, safe_url
from ccanalytics.db.partitions import PARTITIONED_TABLES, add_months, month_start, processor_makes_partitions
from ccanalytics.ops.doctorcheck import DEFAULT_TIMEOUT_S, FAIL, OK, WARN, Check, reason, timed

MIN_SERVER_MAJOR = 14


def doctor_engine(settings: Settings, timeout: float = DEFAULT_TIMEOUT_S) -> Engine:
    """An engine for the checks: one connection, a connect timeout and a statement timeout."""
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
    where = safe_url(engine.url.difference_update_query(["connect_timeout"]))

    def run() -> tuple[str, str]:
        started = time.perf_counter()
        try:
            with engine.connect() as conn:
                version = conn.execute(sa.text("SHOW server_version")).scalar_one()
                num = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one())
        except sa.exc.DBAPIError as exc:
            return FAIL, f"cannot connect to {where}: {reason(exc)}"
        ms = (time.perf_counter() - started) * 1000
        detail = f"PostgreSQL {version.split()[0]} at {where} ({ms:.0f} ms)"
        if num // 10000 < MIN_SERVER_MAJOR:
            return WARN, detail + f"; PostgreSQL {MIN_SERVER_MAJOR} or newer is required"
        return OK, detail

    return timed("database", run)


def check_migrations(engine: Engine) -> Check:
    def run() -> tuple[str, str]:
        st = migrations.status(engine)
        known = {m.version for m in migrations.discover()}
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

    return timed("migrations", run)


_BOUND = r"FROM \('([^']+)'\) TO \('([^']+)'\)"


def check_partitions(engine: Engine, months_ahead: int, *, today: date | None = None) -> Check:
    """Every partitioned call table has partitions for this UTC month and ``months_ahead`` after it.
    A missing current month fails (the call processor's INSERTs would fail); missing months ahead
    warn (the nightly ``partitions`` job creates them — or, on an attached database, the call
    processor's partition manager, and the advice says so)."""

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

    return timed("partitions", run)


DATA_DAYS = 7  # the days the "data" check reads


def check_data(engine: Engine, *, tz: str, today: date | None = None, now: datetime | None = None) -> Check:
    """The call processor's rows of the last ``DATA_DAYS`` days that break expectations
    (:mod:`ccanalytics.db.dataproblems`): a warning with their counts, to take to the processor's team;
    ccanalytics reads them as they are."""

    def run() -> tuple[str, str]:
        last = today or timeutil.today(tz)
        found = dataproblems.count(engine, last - timedelta(days=DATA_DAYS - 1), last, tz=tz, now=now)
        if not found.total:
            return OK, f"no odd rows of the call processor in the last {DATA_DAYS} days"
        return WARN, f"last {DATA_DAYS} days: {found.describe()} (read as they are; see docs/attach.md)"

    return timed("data", run)


def check_tenant_reports(engine: Engine, settings: Settings) -> Check:
    """The tenants of CCA_TENANT_REPORTS exist in the database and have the channels they ask for
    (the global SMTP server, the global bot); a tenant that does not is a failure: its reports are not
    sent."""

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

    return timed("tenants", run)


def _covered(lo: date, hi: date, ranges: list[tuple[datetime, datetime]]) -> bool:
    start = datetime(lo.year, lo.month, lo.day, tzinfo=UTC)
    end = datetime(hi.year, hi.month, hi.day, tzinfo=UTC)
    return any(a <= start and end <= b for a, b in ranges)
