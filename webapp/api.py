"""The JSON API under /api/v1: thin views over ccanalytics.

Every answer is ``{"data": …}``; every error ``{"error": {"code", "message", "details"}}`` with its
HTTP status. Query parameters and bodies are declared per view (``@query``, ``@json_body``, in
webapp/apiparams.py) and validated strictly — unknown or repeated parameters, bad dates, ids and JSON
are 400s — and the same declarations feed the OpenAPI document (webapp/openapi.py). Writes are
recorded in the audit log by the library functions they call, in the transaction of the change.

Views over calls take ``?tenant=`` (``TENANT``) and read through :func:`webapp.tenancy.scope`: a reader
limited to tenants sees only theirs (another tenant's call is a 404, as if it did not exist); prompts,
A/B tests and suggestions are shared by every tenant.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict
from datetime import date
from typing import Any, TypedDict

from flask import Blueprint, current_app, request
from werkzeug.exceptions import HTTPException

from ccanalytics.analytics import metrics
from ccanalytics.analytics.store import Store
from ccanalytics.auth import users as auth
from ccanalytics.core import labels, privacy, timeutil
from ccanalytics.core.errors import Conflict, Forbidden, IngestValidationError, InvalidArgument, NotFound
from ccanalytics.experiments import lifecycle as experiments
from ccanalytics.ingest.load import ingest
from ccanalytics.prompts import optimizer
from ccanalytics.prompts import versions as prompts
from ccanalytics.quality import review
from ccanalytics.quality.report import quality_report

from . import errorpages, tenancy
from .apiparams import (
    MAX_DATE,
    MIN_DATE,
    TENANT,
    TEST_NAME_PATTERN,
    TEXT_PATTERN,
    VERSION_REF_PATTERN,
    BodyField,
    Param,
    json_body,
    ok,
    parse_id,
    parse_test_ref,
    parse_uuid,
    parse_version_ref,
    query,
    read_json,
)
from .auth import current_principal, public, role_required
from .db import get_engine

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)

ALL_ROLES = ("admin", "analyst", "service")
MAX_RANGE_DAYS = 400  # calls, quality: one request covers at most this many days
MAX_SUMMARY_BUCKETS = 366  # summaries: at most this many days/weeks/months in one request
MAX_PAGE_SIZE = 200
MAX_RESULT_WINDOW = 10_000  # page * page_size: deeper browsing goes through narrower date ranges
MAX_INGEST_BYTES = 50 * 1024 * 1024


def _records(frame, json_columns: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    rows = frame.to_dicts()
    for row in rows:
        for name in json_columns:
            if isinstance(row.get(name), str):
                row[name] = json.loads(row[name])
    return rows


def _tz() -> str:
    return current_app.config["TIMEZONE"]


def _role() -> str | None:
    principal = current_principal()
    return principal.role if principal else None


def _actor() -> str:
    principal = current_principal()
    return principal.actor if principal else "anonymous"


def _days(q: dict[str, Any], *, default_days: int, max_days: int = MAX_RANGE_DAYS) -> tuple[date, date]:
    first, last = timeutil.resolve_days(q.get("date_from"), q.get("date_to"), _tz(), default_days=default_days)
    if (last - first).days + 1 > max_days:
        raise InvalidArgument(f"the date range covers {(last - first).days + 1} days; at most {max_days}")
    return first, last


def _resolver():
    ext = current_app.extensions.setdefault("cca", {})
    if "prompt_resolver" not in ext:
        from ccanalytics.prompts.resolver import PromptResolver

        ext["prompt_resolver"] = PromptResolver(get_engine(), ttl_seconds=5.0)
    return ext["prompt_resolver"]


def _prompts_changed() -> None:
    resolver = current_app.extensions.get("cca", {}).get("prompt_resolver")
    if resolver is not None:
        resolver.invalidate()


@bp.after_request
def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    """Routing and protocol errors (404, 405, 413…) as JSON under /api/; a Russian page elsewhere."""
    if exc.code is None or exc.code < 400:
        return exc
    if not request.path.startswith("/api/"):
        return errorpages.http_error(exc)
    code = re.sub(r"[^a-z0-9]+", "_", (exc.name or "error").lower()).strip("_")
    message = {404: "no such endpoint", 405: f"method {request.method} is not allowed here"}.get(
        exc.code, exc.description or exc.name
    )
    if exc.code >= 500:
        message = "internal error"
    headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after")}
    return {"error": {"code": code, "message": message, "details": None}}, exc.code, headers


# -------------------------------------------------------------------------------------- parameters
DATE_FROM = Param("date_from", "date", "First day (YYYY-MM-DD, business time zone), inclusive.")
DATE_TO = Param("date_to", "date", "Last day (YYYY-MM-DD), inclusive; default today.")


class _Bounds(TypedDict):
    minimum: float
    maximum: float


SCORE: _Bounds = {"minimum": 0.0, "maximum": 1.0}


# ------------------------------------------------------------------------------------------- views
@bp.get("/me")
@role_required(*ALL_ROLES)
@query()
def me(q):
    """Who am I: the user or token of this request, its role and the tenants it may read (null: every tenant)."""
    return ok(current_principal().to_dict())


@bp.get("/tenants")
@query()
def list_tenants(q):
    """The tenants (retail networks) the reader may see: slug and name; the slugs ``?tenant=`` takes."""
    limit = tenancy.allowed()
    found = [t for t in tenancy.known() if limit is None or t.slug in limit]
    return ok([{"slug": t.slug, "name": t.name} for t in found])


@bp.get("/openapi.json")
@public
@query()
def openapi(q):
    from .openapi import spec

    return spec(current_app)


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
    first, last = _days(q, default_days=30)
    page, size = q["page"], q["page_size"]
    if page * size > MAX_RESULT_WINDOW:
        raise InvalidArgument(
            f"page {page} is out of range: page × page_size may be at most {MAX_RESULT_WINDOW:,}; "
            "narrow the date range instead",
            details={"page": page, "page_size": size},
        )
    offset = (page - 1) * size
    frame = Store(get_engine(), tz=_tz()).calls(
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
            "calls": _records(frame.slice(offset, size)),
            "period": {"date_from": first, "date_to": last, "tz": _tz()},
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
    store = Store(get_engine(), tz=_tz())
    found = store.calls(MIN_DATE, MAX_DATE, call_ids=[cid], details=True, tenant=tenancy.scope())
    if found.is_empty():
        raise NotFound(f"call {cid} does not exist")
    call = _records(found, ("quality_details", "cost_breakdown", "usage"))[0]
    day = call["started_at"].date()
    turns = _records(store.turns(day, day, call_ids=[cid]))
    tools = _records(store.tool_calls(day, day, call_ids=[cid]), ("tool_args", "tool_result"))
    return ok(privacy.for_reader({"call": call, "turns": turns, "tool_calls": tools}, _role()))


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
        first, last = metrics.current_period(q["period"], timeutil.today(_tz()))
    else:
        first, last = _days(q, default_days=30, max_days=3660)
    buckets = len(metrics.period_buckets(q["period"], first, last))
    if buckets > MAX_SUMMARY_BUCKETS:
        raise InvalidArgument(f"the range has {buckets} {q['period']}s; at most {MAX_SUMMARY_BUCKETS} per request")
    found = metrics.summaries(get_engine(), q["period"], first, last, tz=_tz(), tenant=tenancy.scope())
    return ok([s.to_dict() for s in found])


@bp.get("/analytics/quality")
@query(DATE_FROM, DATE_TO, TENANT)
def quality(q):
    """Quality of a period: averages per criterion and scenario, trend, queues, judges. Default: 7 days."""
    first, last = _days(q, default_days=7)
    return ok(quality_report(get_engine(), first, last, tz=_tz(), tenant=tenancy.scope()))


# ------------------------------------------------------------------------------------------ prompts
PROMPT_NAME = Param("name", "text", "Prompt name, e.g. tire_agent.", max_length=100, pattern=prompts.NAME_PATTERN)


def _version_dict(v: prompts.PromptVersion) -> dict[str, Any]:
    return v.to_dict()


@bp.get("/prompts")
@role_required(*ALL_ROLES)
@query(PROMPT_NAME, Param("active", "bool", "Only the active version(s) (true) or only inactive ones (false)."))
def list_prompts(q):
    """Prompt versions, newest first per name, with their texts."""
    if q["name"] is not None and not re.match(prompts.NAME_PATTERN, q["name"]):
        raise InvalidArgument("name must be lowercase letters, digits, '_' or '-', starting with a letter")
    found = prompts.list_versions(get_engine(), q["name"])
    if q["active"] is not None:
        found = [v for v in found if v.is_active == q["active"]]
    return ok([_version_dict(v) for v in found])


@bp.get("/prompts/resolve")
@role_required(*ALL_ROLES)
@query(
    Param("name", "text", "Prompt name, e.g. tire_agent.", required=True, pattern=prompts.NAME_PATTERN),
    Param("caller_id", "text", "The caller's number: picks the caller's sticky A/B variant.", max_length=32),
    Param("call_id", "uuid", "The call id: the A/B key when the number is hidden."),
)
def resolve_prompt(q):
    """The prompt for a call: the active version, or the caller's variant while an A/B test runs."""
    from ccanalytics.prompts.resolver import as_dict

    if not re.match(prompts.NAME_PATTERN, q["name"]):
        raise InvalidArgument("name must be lowercase letters, digits, '_' or '-', starting with a letter")
    found = _resolver().resolve(
        q["name"], caller_id=q["caller_id"], call_id=str(q["call_id"]) if q["call_id"] else None
    )
    return ok(as_dict(found))


@bp.get("/prompts/<version_id>")
@role_required(*ALL_ROLES)
@query()
def get_prompt(q, version_id: str):
    """One prompt version by id or label."""
    return ok(_version_dict(prompts.get_version(get_engine(), parse_version_ref(version_id))))


@bp.post("/prompts")
@query()
@json_body(
    {
        "name": BodyField(
            "string",
            "Prompt name (lowercase, digits, '_' or '-').",
            required=True,
            max_length=100,
            pattern=prompts.NAME_PATTERN,
        ),
        "system_prompt": BodyField(
            "string", "The system prompt.", required=True, max_length=prompts.MAX_PROMPT_CHARS, pattern=TEXT_PATTERN
        ),
        "tools_config": BodyField("object", "Tools configuration (JSON object).", nullable=True),
        "metadata": BodyField("object", "Free-form metadata.", nullable=True),
        "note": BodyField("string", "What changed and why.", nullable=True, max_length=2000),
        "activate": BodyField("boolean", "Make it the active version at once (default false)."),
    }
)
def create_prompt(q, b):
    """Create a new version of a prompt (number = previous + 1); not active unless ``activate``."""
    v = prompts.create_version(
        get_engine(),
        b["name"],
        b["system_prompt"],
        tools_config=b["tools_config"],
        metadata=b["metadata"],
        author=_actor(),
        note=b["note"],
        activate=bool(b["activate"]),
    )  # audited by the library
    if v.is_active:
        _prompts_changed()
    return ok(_version_dict(v), 201)


@bp.patch("/prompts/<version_id>/activate")
@query()
@json_body({"reason": BodyField("string", "Why (kept in the activation history).", max_length=2000)}, optional=True)
def activate_prompt(q, version_id: str, b):
    """Make a version the active one of its prompt (atomically; recorded with who and why)."""
    ref = parse_version_ref(version_id)
    activation = prompts.activate_version(get_engine(), ref, by=_actor(), reason=b["reason"])  # audited
    _prompts_changed()
    return ok(activation.to_dict())


# ----------------------------------------------------------------------------------------- A/B tests
@bp.get("/prompts/ab-tests")
@role_required(*ALL_ROLES)
@query(
    Param(
        "status",
        "enum",
        "Only tests in this status: draft, running, stopped or completed for ccanalytics's tests; active, stopped "
        "or completed for the call processor's.",
        choices=("draft", "running", "stopped", "completed", "active"),
    ),
    Param(
        "source",
        "enum",
        "Whose tests: ccanalytics's own (default; sticky assignment, results per call) or the call processor's "
        "(its prompt_ab_tests, read-only: its counters as stored, no per-call results).",
        default="ccanalytics",
        choices=("ccanalytics", "processor"),
    ),
)
def list_ab_tests(q):
    """A/B tests, newest first: ccanalytics's, or with source=processor the call processor's own.

    The call processor's tests (ProcessorABTest) carry its counters as it stored them and
    `per_call_results: null` with a `results_note`: the processor does not record the variant on the
    call, so no result per call can be computed for them."""
    engine = get_engine()
    status = q["status"]
    if q["source"] == "processor":
        if status is not None and status not in experiments.PROCESSOR_STATUSES:
            raise InvalidArgument(
                f"status of the call processor's tests must be one of {', '.join(experiments.PROCESSOR_STATUSES)}"
            )
        return ok([t.to_dict() for t in experiments.processor_tests(engine, status=status)])
    if status == "active":
        raise InvalidArgument(
            "status active belongs to the call processor's tests (source=processor); "
            "ccanalytics's tests are draft, running, stopped or completed"
        )
    return ok([t.to_dict() for t in experiments.list_tests(engine, status=status)])


@bp.post("/prompts/ab-tests")
@query()
@json_body(
    {
        "test_name": BodyField(
            "string", "Unique name of the test.", required=True, max_length=100, pattern=TEST_NAME_PATTERN
        ),
        "versions": BodyField(
            "array",
            "Prompt versions (uuid ids or labels like tire_agent@v3) of one prompt; the first is the control A.",
            required=True,
            items={
                "type": "string",
                "description": "A version id (uuid) or label (tire_agent@v3).",
                "pattern": VERSION_REF_PATTERN,
            },
            min_items=2,
            max_items=6,
        ),
        "weights": BodyField("array", "Traffic shares summing to 1 (default equal).", items={"type": "number"}),
        "description": BodyField("string", "What the test checks.", nullable=True, max_length=2000),
        "goal_metric": BodyField("string", "The metric that decides.", choices=experiments.GOAL_METRICS, nullable=True),
        "exclusions": BodyField("object", "Exclusion rules: " + ", ".join(experiments.EXCLUSION_KEYS), nullable=True),
    }
)
def create_ab_test(q, b):
    """Create a draft A/B test over two or more versions of one prompt."""
    engine = get_engine()
    if not all(isinstance(ref, str) for ref in b["versions"]):
        raise InvalidArgument("versions must be version ids (uuid strings) or labels (tire_agent@v3)")
    ids = [prompts.get_version(engine, parse_version_ref(ref)).id for ref in b["versions"]]
    test = experiments.create_test(
        engine,
        b["test_name"],
        ids,
        weights=b["weights"],
        created_by=_actor(),
        description=b["description"],
        goal_metric=b["goal_metric"] or "resolved_without_operator",
        exclusions=b["exclusions"],
    )  # audited by the library
    return ok(test.to_dict(), 201)


def _test(test_id: str, *, results: bool = False) -> experiments.ABTest:
    """A test of ccanalytics's by id (uuid) or name. One of the call processor's own tests is a 409 that
    says why: they are read-only here and have no per-call results."""
    engine = get_engine()
    ref = parse_test_ref(test_id)
    try:
        return experiments.get_test(engine, ref)
    except NotFound:
        try:
            theirs = experiments.get_processor_test(engine, ref)
        except NotFound:
            pass
        else:
            why = experiments.PROCESSOR_RESULTS_NOTE_EN if results else "ccanalytics does not change them"
            raise Conflict(
                f"{theirs.test_name!r} is one of the call processor's own A/B tests (listed with source=processor): "
                + why,
                details={"source": "processor", "id": str(theirs.id)},
            ) from None
        raise


@bp.post("/prompts/ab-tests/<test_id>/start")
@query()
@json_body({}, optional=True)
def start_ab_test(q, test_id: str, b):
    """Start a draft test (at most one running test per prompt)."""
    started = experiments.start_test(get_engine(), _test(test_id).id, by=_actor())  # audited by the library
    _prompts_changed()
    return ok(started.to_dict())


@bp.post("/prompts/ab-tests/<test_id>/stop")
@query()
@json_body(
    {
        "decision": BodyField(
            "string", "The decision recorded with the stop.", required=True, choices=experiments.DECISIONS
        ),
        "note": BodyField("string", "Why.", nullable=True, max_length=2000),
    }
)
def stop_ab_test(q, test_id: str, b):
    """Stop a running test with a decision (ship_b, keep_a, inconclusive, stop_harm)."""
    test = _test(test_id)
    stopped = experiments.stop_test(get_engine(), test.id, by=_actor(), decision=b["decision"], note=b["note"])
    _prompts_changed()  # audited by the library
    return ok(stopped.to_dict())


@bp.get("/prompts/ab-tests/<test_id>/results")
@query()
def ab_test_results(q, test_id: str):
    """Per-variant metrics, comparisons with A (CIs, p-values), SRM check and a recommendation."""
    test = _test(test_id, results=True)
    if test.started_at is None:
        raise Conflict(f"test {test.test_name!r} has not started")
    return ok(experiments.results(get_engine(), test.id).to_dict())


# ------------------------------------------------------------------------------- optimizer suggestions
@bp.get("/prompts/suggestions")
@query(Param("status", "enum", "Only suggestions in this status.", choices=("proposed", "approved", "rejected")))
def list_suggestions(q):
    """Prompt changes proposed by the optimizer from failure patterns."""
    return ok([s.to_dict() for s in optimizer.list_suggestions(get_engine(), q["status"])])


@bp.post("/prompts/suggestions/<suggestion_id>/decide")
@query()
@json_body(
    {
        "approve": BodyField("boolean", "Approve (a new inactive version) or reject.", required=True),
        "prompt_text": BodyField(
            "string", "The edited prompt text to approve instead of the proposal.", max_length=prompts.MAX_PROMPT_CHARS
        ),
    }
)
def decide_suggestion(q, suggestion_id: str, b):
    """Approve a suggestion into a new (inactive) prompt version, or reject it."""
    sid = parse_id(suggestion_id, "suggestion id")
    decided = optimizer.decide(get_engine(), sid, by=_actor(), approve=b["approve"], prompt_text=b["prompt_text"])
    return ok(decided.to_dict())  # audited by the library


# ------------------------------------------------------------------------------------------- review
@bp.get("/review")
@query(
    Param("status", "enum", "Only items in this status.", choices=review.STATUSES),
    Param("limit", "int", "At most this many items.", default=50, minimum=1, maximum=200),
    TENANT,
)
def review_queue(q):
    """The manual review queue (lowest scores first) and its counts per status."""
    engine = get_engine()
    scope = tenancy.scope()
    items = review.list_items(engine, status=q["status"], limit=q["limit"], tenant=scope)
    shown = [privacy.for_reader(asdict(i), _role()) for i in items]
    return ok({"items": shown, "counts": review.counts(engine, tenant=scope)})


@bp.post("/review/<call_id>/take")
@query()
@json_body({}, optional=True)
def review_take(q, call_id: str, b):
    """Start reviewing a call (new → in_review, assigned to you). A call of another tenant is a 404."""
    cid = parse_uuid(call_id)
    review.take(get_engine(), cid, _actor(), tenant=tenancy.scope())  # audited by the library
    return ok({"call_id": cid, "status": "in_review", "assigned_to": _actor()})


@bp.post("/review/<call_id>/resolve")
@query()
@json_body(
    {
        "verdicts": BodyField(
            "object",
            "Your score per criterion: 0–1, or null for not applicable.",
            required=True,
            properties={
                "properties": {
                    name: {"type": ["number", "null"], "minimum": 0, "maximum": 1} for name in labels.CRITERIA
                },
                "additionalProperties": False,
            },
        ),
        "comment": BodyField("string", "What went wrong (or right).", nullable=True, max_length=5000),
    }
)
def review_resolve(q, call_id: str, b):
    """Resolve a review with a verdict per criterion (stored as labels for judge calibration). A call of
    another tenant is a 404."""
    cid = parse_uuid(call_id)
    stored = review.resolve(get_engine(), cid, _actor(), b["verdicts"], b["comment"], tenant=tenancy.scope())
    return ok({"call_id": cid, "status": "resolved", "labels_stored": stored})


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


# -------------------------------------------------------------------------------------------- audit
@bp.get("/audit")
@role_required("admin")
@query(
    Param("action", "text", "Only this action, e.g. prompt.activated."),
    Param("object_type", "text", "Only this object type, e.g. prompt_version.", max_length=50),
    Param("object_id", "text", "Only this object id.", max_length=200),
    Param("actor", "text", "Only this actor.", max_length=200),
    Param("limit", "int", "At most this many entries.", default=100, minimum=1, maximum=1000),
)
def audit_log(q):
    """The audit log, newest first (admin only)."""
    entries = auth.audit_entries(
        get_engine(),
        action=q["action"],
        object_type=q["object_type"],
        object_id=q["object_id"],
        actor=q["actor"],
        limit=q["limit"],
    )
    return ok([e.to_dict() for e in entries])
