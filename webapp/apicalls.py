"""The JSON API's calls: out (``/analytics/calls``, one call, summaries, quality) and in (``POST /calls``,
the call processor's logs), each over the tenants the reader may see."""

from __future__ import annotations

from typing import TypedDict

from ccanalytics.analytics import metrics
from ccanalytics.analytics.store import Store
from ccanalytics.core import privacy, timeutil
from ccanalytics.core.errors import Forbidden, IngestValidationError, InvalidArgument, NotFound
from ccanalytics.ingest.load import ingest
from ccanalytics.quality.report import quality_report

from . import tenancy
from .apibase import bp, days, log, reader_role, records, tz
from .apiparams import MAX_DATE, MIN_DATE, TENANT, Param, ok, parse_uuid, query, read_json
from .auth import role_required
from .db import get_engine

MAX_SUMMARY_BUCKETS = 366  # summaries: at most this many days/weeks/months in one request
MAX_PAGE_SIZE = 200
MAX_RESULT_WINDOW = 10_000  # page * page_size: deeper browsing goes through narrower date ranges
MAX_INGEST_BYTES = 50 * 1024 * 1024

DATE_FROM = Param("date_from", "date", "First day (YYYY-MM-DD, business time zone), inclusive.")
DATE_TO = Param("date_to", "date", "Last day (YYYY-MM-DD), inclusive; default today.")


class _Bounds(TypedDict):
    minimum: float
    maximum: float


SCORE: _Bounds = {"minimum": 0.0, "maximum": 1.0}


@bp.get("/analytics/calls")
@query(
    DATE_FROM,
    DATE_TO,
    Param("scenario", "text", "Scenario name (matches one part of 'a + b'); repeat for several.", repeated=True),
    Param("transferred", "bool", "Only calls transferred to an operator (true) or not (false)."),
    Param("transfer_reason", "text", "Only this transfer reason.", max_length=50),
    Param("quality_below", "float", "Quality score below this (scored calls only).", **SCORE),
    Param("quality_above", "float", "Quality score above this (scored calls only).", **SCORE),
    Param("prompt_version", "text", "Prompt version label, e.g. tire_agent@v2; repeat for several.", repeated=True),
    Param("page", "int", "Page number, 1-based.", default=1, minimum=1, maximum=MAX_RESULT_WINDOW),
    Param("page_size", "int", "Calls per page.", default=50, minimum=1, maximum=MAX_PAGE_SIZE),
    TENANT,
)
def list_calls(q):
    """Calls of a period, newest first, one page at a time (phones masked). Default: the last 30 days."""
    first, last = days(q, default_days=30)
    page, size = q["page"], q["page_size"]
    if page * size > MAX_RESULT_WINDOW:
        raise InvalidArgument(
            f"page {page} is out of range: page × page_size may be at most {MAX_RESULT_WINDOW:,}; "
            "narrow the date range instead",
            details={"page": page, "page_size": size},
        )
    offset = (page - 1) * size
    frame = Store(get_engine(), tz=tz()).calls(
        first,
        last,
        scenario=q["scenario"] or None,
        transferred=q["transferred"],
        transfer_reason=q["transfer_reason"],
        quality_below=q["quality_below"],
        quality_above=q["quality_above"],
        prompt_version=q["prompt_version"] or None,
        tenant=tenancy.scope(),
        limit=offset + size + 1,
        newest_first=True,
    )
    has_more = frame.height > offset + size
    return ok(
        {
            "calls": records(frame.slice(offset, size)),
            "period": {"date_from": first, "date_to": last, "tz": tz()},
            "page": page,
            "page_size": size,
            "has_more": has_more,
            "next_page": page + 1 if has_more else None,
        }
    )


@bp.get("/analytics/calls/<call_id>")
@query(TENANT)
def get_call(q, call_id: str):
    """One call with its turns and tool calls. The caller's number is masked; for readers other than
    admins every phone number and personal field in the transcript, tool arguments and results is
    masked too. A call of another tenant is a 404."""
    cid = parse_uuid(call_id)
    store = Store(get_engine(), tz=tz())
    found = store.calls(MIN_DATE, MAX_DATE, call_ids=[cid], details=True, tenant=tenancy.scope())
    if found.is_empty():
        raise NotFound(f"call {cid} does not exist")
    call = records(found, ("quality_details", "cost_breakdown", "usage"))[0]
    day = call["started_at"].date()
    turns = records(store.turns(day, day, call_ids=[cid]))
    tools = records(store.tool_calls(day, day, call_ids=[cid]), ("tool_args", "tool_result"))
    return ok(privacy.for_reader({"call": call, "turns": turns, "tool_calls": tools}, reader_role()))


@bp.get("/analytics/summary")
@query(
    Param("period", "enum", "Bucket size.", default="day", choices=metrics.PERIODS),
    DATE_FROM,
    DATE_TO,
    TENANT,
)
def summary(q):
    """One summary per day, week (Mon–Sun) or month of the range; default: the current period."""
    if q["date_from"] is None and q["date_to"] is None:
        first, last = metrics.current_period(q["period"], timeutil.today(tz()))
    else:
        first, last = days(q, default_days=30, max_days=3660)
    buckets = len(metrics.period_buckets(q["period"], first, last))
    if buckets > MAX_SUMMARY_BUCKETS:
        raise InvalidArgument(f"the range has {buckets} {q['period']}s; at most {MAX_SUMMARY_BUCKETS} per request")
    found = metrics.summaries(get_engine(), q["period"], first, last, tz=tz(), tenant=tenancy.scope())
    return ok([s.to_dict() for s in found])


@bp.get("/analytics/quality")
@query(DATE_FROM, DATE_TO, TENANT)
def quality(q):
    """Quality of a period: averages per criterion and scenario, trend, queues, judges. Default: 7 days."""
    first, last = days(q, default_days=7)
    return ok(quality_report(get_engine(), first, last, tz=tz(), tenant=tenancy.scope()))


# ------------------------------------------------------------------------------------------- ingest
def _check_ingest_tenants(payload: dict | list) -> None:
    """A reader limited to tenants writes only their calls: each record names one of them."""
    limit = tenancy.allowed()
    if limit is None:
        return
    for record in payload if isinstance(payload, list) else [payload]:
        slug = record.get("tenant") if isinstance(record, dict) else None
        if not isinstance(slug, str) or slug.strip().lower() not in limit:
            raise Forbidden(
                f"this token may write only calls of {', '.join(limit)}: each call must name one of them as its tenant",
                details={"tenants": list(limit), "tenant": slug if isinstance(slug, str) else None},
            )


@bp.post("/calls")
@role_required("admin", "service")
@query(
    Param(
        "on_conflict",
        "enum",
        "A re-delivered call_id with a changed payload: replace it, ignore it, or refuse (409-like 422).",
        default="replace",
        choices=("replace", "ignore", "error"),
    )
)
def ingest_calls(q):
    """Ingest one call log (a JSON object) or a batch (an array), atomically. Re-delivery of an
    identical call is a no-op (``unchanged``). A token limited to tenants must name one of them as each
    call's ``tenant`` (403 otherwise)."""
    payload = read_json(limit=MAX_INGEST_BYTES)
    if not isinstance(payload, dict | list):
        raise InvalidArgument("the body must be a call log (an object) or a batch of them (an array)")
    _check_ingest_tenants(payload)
    try:
        result = ingest(get_engine(), payload, on_conflict=q["on_conflict"])
    except IngestValidationError as exc:
        for problem in exc.records:  # one log line per refused call, with its call_id
            log.warning("call log refused: %s", problem.describe(), extra={"call_id": problem.call_id})
        raise
    ids = [r.get("call_id") for r in (payload if isinstance(payload, list) else [payload]) if isinstance(r, dict)]
    for cid in ids:  # one log line per call, with its call_id (the outcome when the batch is one call)
        extra = {"call_id": cid, "batch_size": len(ids)}
        if len(ids) == 1:
            extra["outcome"] = result.summary()
        log.info("call log ingested", extra=extra)
    return ok(result.summary())
