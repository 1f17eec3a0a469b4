"""The query API for notebooks and the rest of the package.

    import ccanalytics as cca
    store = cca.connect()
    calls = store.calls("2026-11-01", "2026-11-23", scenario="tire_search", transferred=True)
    calls.to_pandas()

Results are Polars DataFrames with timestamps in the business time zone (``tz``, CCA_TIMEZONE). Ids are uuids
(text columns), as the call processor writes them. Rows are
streamed out of PostgreSQL with ``COPY … TO STDOUT`` and parsed by Polars, which keeps a 90-day range
well under a second. Phone numbers are masked unless ``mask_phones=False``.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.analytics.storecolumns import (
    CALL_COLUMNS,
    CALL_DETAIL_COLUMNS,
    POLARS_READ,
    TOOL_COLUMNS,
    TURN_COLUMNS,
    Col,
)
from ccanalytics.core import timeutil
from ccanalytics.core.config import get_settings
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.core.privacy import InvalidPhone, mask_phone, normalize_phone
from ccanalytics.db.engine import driver_connection, engine_from_settings, safe_url
from ccanalytics.db.migrate import migrate
from ccanalytics.db.migrations import status

# the output columns moved to ccanalytics.analytics.storecolumns; code outside this repository imports
# them from here as ccanalytics.store (ccanalytics.MOVED)
__all__ = [
    "CALL_COLUMNS",
    "CALL_DETAIL_COLUMNS",
    "TOOL_COLUMNS",
    "TURN_COLUMNS",
    "Col",
    "DateLike",
    "Store",
    "connect",
]

DateLike = date | datetime | str | None


# turns and tool calls are partitioned on their own timestamps: search this much around the calls
_CHILD_SLACK = timedelta(hours=7)


class Store:
    """Read access to the call data. Create with :func:`ccanalytics.connect`."""

    def __init__(self, engine: Engine, *, tz: str = timeutil.DEFAULT_TZ) -> None:
        self.engine = engine
        self.tz = tz

    def __repr__(self) -> str:
        return f"Store({safe_url(self.engine.url)}, tz={self.tz!r})"

    # ------------------------------------------------------------------------------------ calls
    def calls(
        self,
        date_from: DateLike = None,
        date_to: DateLike = None,
        *,
        scenario: str | Sequence[str] | None = None,
        transferred: bool | None = None,
        transfer_reason: str | None = None,
        quality_below: float | None = None,
        quality_above: float | None = None,
        prompt_version: str | Sequence[str] | None = None,
        caller: str | None = None,
        customer_id: str | uuid.UUID | None = None,
        tenant: str | Sequence[str] | None = None,
        call_ids: Iterable[str | uuid.UUID] | None = None,
        scored: bool | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        mask_phones: bool = True,
        details: bool = False,
    ) -> pl.DataFrame:
        """Calls that started in [date_from, date_to] (local days, inclusive), oldest first.

        Args:
            date_from, date_to: dates (``date``, ``"2026-11-01"``, ``"today"``) or aware datetimes;
                by default the last 30 days.
            scenario: a scenario name or several; matches the whole scenario or one of its
                ``+``-joined parts (``"order_creation"`` matches ``"tire_search + order_creation"``).
            transferred / transfer_reason: operator transfers.
            quality_below / quality_above: quality_score < below, > above (unscored calls excluded).
            prompt_version: one label or several.
            caller: a phone number in any common format (the number's calls to every tenant).
            customer_id: one customer (a customer is one tenant's: the same number is a customer of
                each tenant it called).
            tenant: a tenant's slug or several.
            scored: True for scored calls only, False for calls still waiting for a score.
            limit, newest_first: at most ``limit`` rows, taken from the newest end if asked.
            mask_phones: mask caller_id (default) — set False only inside the admin perimeter.
            details: also return the JSON documents ``quality_details``, ``cost_breakdown`` and
                ``usage`` (several KB per call: ask for them on short ranges).

        Returns a DataFrame with one row per call; ``cost_*_usd`` columns unpack cost_breakdown.
        """
        start, end = timeutil.period_bounds(date_from, date_to, self.tz)
        where = ["c.started_at >= %(start)s", "c.started_at < %(end)s"]
        params: dict[str, Any] = {"start": start, "end": end}
        if scenario is not None:
            names = [scenario] if isinstance(scenario, str) else list(scenario)
            where.append("(c.scenario = ANY(%(scenario)s) OR string_to_array(c.scenario, ' + ') && %(scenario)s)")
            params["scenario"] = names
        if transferred is not None:
            where.append("c.transferred_to_operator = %(transferred)s")
            params["transferred"] = bool(transferred)
        if transfer_reason is not None:
            where.append("c.transfer_reason = %(reason)s")
            params["reason"] = transfer_reason
        if quality_below is not None:
            where.append("c.quality_score < %(qbelow)s")
            params["qbelow"] = _score(quality_below, "quality_below")
        if quality_above is not None:
            where.append("c.quality_score > %(qabove)s")
            params["qabove"] = _score(quality_above, "quality_above")
        if prompt_version is not None:
            where.append("c.prompt_version = ANY(%(pv)s)")
            params["pv"] = [prompt_version] if isinstance(prompt_version, str) else list(prompt_version)
        if caller is not None:
            try:
                params["caller"] = normalize_phone(caller)
            except InvalidPhone as exc:
                raise InvalidArgument(str(exc)) from None
            where.append("c.caller_id = %(caller)s")
        if customer_id is not None:
            where.append("c.customer_id = %(customer_id)s")
            params["customer_id"] = _uuids([customer_id], "customer id")[0]
        if tenant is not None:
            where.append("c.tenant = ANY(%(tenant)s)")
            params["tenant"] = [tenant] if isinstance(tenant, str) else list(tenant)
        if call_ids is not None:
            where.append("c.id = ANY(%(ids)s)")
            params["ids"] = _uuids(call_ids)
        if scored is not None:
            where.append("c.quality_score IS NOT NULL" if scored else "c.quality_score IS NULL")
        order = " DESC" if newest_first else ""
        columns = [Col(col.sql.format(caller="c.caller_id"), col.name, col.kind) for col in CALL_COLUMNS]
        if details:
            columns += CALL_DETAIL_COLUMNS
        sql = (
            f"SELECT {', '.join(c.select() for c in columns)} "  # noqa: S608 — Col constants, fixed filters, int limit
            f"FROM cca_calls c "
            f"WHERE {' AND '.join(where)} ORDER BY c.started_at{order}, c.id{order}{_limit(limit)}"
        )
        frame = self._frame(sql, params, columns)
        return _mask_callers(frame) if mask_phones else frame

    # ------------------------------------------------------------------------------------ turns
    def turns(
        self,
        date_from: DateLike = None,
        date_to: DateLike = None,
        *,
        call_ids: Iterable[str | uuid.UUID] | None = None,
        speaker: str | None = None,
        limit: int | None = None,
    ) -> pl.DataFrame:
        """Turns of the calls that started in [date_from, date_to], ordered by call and turn.

        With ``call_ids`` and no dates, the turns of those calls whenever they happened (no default window).
        """
        if speaker is not None and speaker not in ("customer", "bot"):
            raise InvalidArgument("speaker must be 'customer' or 'bot'")
        sql, params = self._child_query(
            "cca_call_turns",
            "t",
            TURN_COLUMNS,
            date_from,
            date_to,
            call_ids,
            limit,
            extra=("t.speaker = %(speaker)s", {"speaker": speaker}) if speaker else None,
        )
        return self._frame(sql, params, TURN_COLUMNS)

    def tool_calls(
        self,
        date_from: DateLike = None,
        date_to: DateLike = None,
        *,
        call_ids: Iterable[str | uuid.UUID] | None = None,
        tool_name: str | None = None,
        success: bool | None = None,
        limit: int | None = None,
    ) -> pl.DataFrame:
        """Tool calls of the calls that started in [date_from, date_to]; args/results as JSON text.

        With ``call_ids`` and no dates, the tool calls of those calls whenever they happened.
        """
        conds: list[str] = []
        params: dict[str, Any] = {}
        if tool_name is not None:
            conds.append("x.tool_name = %(tool)s")
            params["tool"] = tool_name
        if success is not None:
            conds.append("x.success = %(success)s")
            params["success"] = bool(success)
        extra = (" AND ".join(conds), params) if conds else None
        sql, params = self._child_query(
            "call_tool_calls", "x", TOOL_COLUMNS, date_from, date_to, call_ids, limit, extra=extra
        )
        return self._frame(sql, params, TOOL_COLUMNS)

    # ------------------------------------------------------------------------------------ ad hoc
    def sql(self, query: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        """Run a read query (SQLAlchemy ``:name`` parameters) and return a DataFrame."""
        with self.engine.connect() as conn:
            result = conn.execute(sa.text(query), params or {})
            rows = result.fetchall()
            names = list(result.keys())
        return pl.DataFrame([tuple(r) for r in rows], schema=names, orient="row", infer_schema_length=None)

    # ------------------------------------------------------------------------------------ helpers
    def _child_query(
        self,
        table: str,
        alias: str,
        columns: Sequence[Col],
        date_from: DateLike,
        date_to: DateLike,
        call_ids: Iterable[str | uuid.UUID] | None,
        limit: int | None,
        *,
        extra: tuple[str, dict[str, Any]] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {}
        if call_ids is not None and date_from is None and date_to is None:
            # the given calls whenever they happened: no default window, each call's rows near its start
            params["ids"] = _uuids(call_ids)
            where = [
                f"EXISTS (SELECT 1 FROM cca_calls c "  # noqa: S608 — alias is "t" or "x" (the callers'); values bound
                f"WHERE c.id = ANY(%(ids)s) AND c.id = {alias}.call_id "
                f"AND {alias}.created_at >= c.started_at - %(slack)s "
                f"AND {alias}.created_at < c.started_at + %(slack)s)",
                f"{alias}.call_id = ANY(%(ids)s)",
            ]
            params["slack"] = _CHILD_SLACK
        else:
            start, end = timeutil.period_bounds(date_from, date_to, self.tz)
            params.update(start=start, end=end, cstart=start - _CHILD_SLACK, cend=end + _CHILD_SLACK)
            call_filter = ""
            if call_ids is not None:
                call_filter = " AND c.id = ANY(%(ids)s)"
                params["ids"] = _uuids(call_ids)
            where = [
                f"{alias}.created_at >= %(cstart)s",
                f"{alias}.created_at < %(cend)s",
                f"{alias}.call_id IN (SELECT c.id "  # noqa: S608 — alias and call_filter are fixed; values bound
                f"FROM cca_calls c WHERE c.started_at >= %(start)s "
                f"AND c.started_at < %(end)s{call_filter})",
            ]
        if extra:
            where.append(extra[0])
            params.update(extra[1])
        sql = (
            f"SELECT {', '.join(c.select() for c in columns)} "  # noqa: S608 — table/alias/Col from callers' constants
            f"FROM {table} {alias} "
            f"WHERE {' AND '.join(where)} ORDER BY {alias}.call_id, {alias}.turn_number, {alias}.id{_limit(limit)}"
        )
        return sql, params

    def _frame(self, sql: str, params: dict[str, Any], columns: Sequence[Col]) -> pl.DataFrame:
        buf = io.BytesIO()
        with self.engine.connect() as conn:
            raw = driver_connection(conn)
            with (
                raw.cursor() as cur,
                cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)", params) as copy,
            ):
                for chunk in copy:
                    buf.write(chunk)
        buf.seek(0)
        frame = pl.read_csv(
            buf,
            schema={c.name: POLARS_READ[c.kind] for c in columns},
            has_header=True,
        )
        conversions = []
        for c in columns:
            if c.kind == "ts":
                conversions.append(
                    pl.from_epoch(pl.col(c.name), time_unit="us")
                    .dt.replace_time_zone("UTC")
                    .dt.convert_time_zone(self.tz)
                )
            elif c.kind == "bool":
                conversions.append(pl.col(c.name).cast(pl.Boolean))
        return frame.with_columns(conversions) if conversions else frame


def _mask_callers(frame: pl.DataFrame) -> pl.DataFrame:
    """Mask caller_id exactly as privacy.mask_phone does: vectorised for stored E.164 numbers
    (``+380671234567`` → ``+38067*****67``), through mask_phone itself for anything else."""
    if frame.is_empty():
        return frame
    col = pl.col("caller_id")
    e164 = col.str.contains(r"^\+[0-9]{11,}$")
    length = col.str.len_chars()
    masked = pl.lit(None, dtype=pl.String)
    for n in range(12, 17):  # '+' and 11-15 digits: keep '+' and 5 digits, hide all but the last 2
        masked = (
            pl.when(e164 & (length == n))
            .then(col.str.slice(0, 6) + "*" * (n - 8) + col.str.slice(n - 2))
            .otherwise(masked)
        )
    others = frame.filter(col.is_not_null() & ~(e164 & length.is_between(12, 16))).get_column("caller_id").unique()
    mapping = {number: mask_phone(number) for number in others.to_list()}
    fallback = col.replace_strict(mapping, default=None, return_dtype=pl.String) if mapping else pl.lit(None)
    return frame.with_columns(pl.coalesce(masked, fallback).alias("caller_id"))


def _score(value: float, name: str) -> float:
    if not 0 <= float(value) <= 1:
        raise InvalidArgument(f"{name} must be between 0 and 1, got {value}")
    return float(value)


def _uuids(values: Iterable[str | uuid.UUID], what: str = "call id") -> list[uuid.UUID]:
    out = []
    for v in values:
        try:
            out.append(v if isinstance(v, uuid.UUID) else uuid.UUID(str(v)))
        except ValueError:
            raise InvalidArgument(f"not a {what} (UUID): {v!r}") from None
    return out


def _limit(limit: int | None) -> str:
    if limit is None:
        return ""
    if int(limit) < 1:
        raise InvalidArgument("limit must be positive")
    return f" LIMIT {int(limit)}"


def connect(url: str | None = None, *, settings: Any = None) -> Store:
    """Open the project database: ``url``, else ``CCA_DATABASE_URL``, else the embedded server.

    The embedded database is migrated when its schema is behind, so it is ready to use at once; a
    production database is never migrated implicitly (run ``ccanalytics db migrate``).
    """
    settings = settings or get_settings()
    embedded = url is None and not settings.database_url
    engine = engine_from_settings(settings, url=url, application_name="ccanalytics")
    if embedded and not status(engine).up_to_date:
        migrate(engine, partitions_ahead_months=settings.partitions_ahead_months)
    return Store(engine, tz=settings.timezone)
