"""The JSON API's A/B tests of prompt versions: ccanalytics's own (create, start, stop, results) and the
call processor's, read-only; shared by every tenant."""

from __future__ import annotations

from ccanalytics.core.errors import Conflict, InvalidArgument, NotFound
from ccanalytics.experiments import abresults, processortests
from ccanalytics.experiments import lifecycle as experiments
from ccanalytics.prompts import versions as prompts

from .apibase import ALL_ROLES, actor, bp, prompts_changed
from .apiparams import (
    TEST_NAME_PATTERN,
    VERSION_REF_PATTERN,
    BodyField,
    Param,
    json_body,
    ok,
    parse_test_ref,
    parse_version_ref,
    query,
)
from .auth import role_required
from .db import get_engine


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
        if status is not None and status not in processortests.PROCESSOR_STATUSES:
            raise InvalidArgument(
                f"status of the call processor's tests must be one of {', '.join(processortests.PROCESSOR_STATUSES)}"
            )
        return ok([t.to_dict() for t in processortests.processor_tests(engine, status=status)])
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
        created_by=actor(),
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
            theirs = processortests.get_processor_test(engine, ref)
        except NotFound:
            pass
        else:
            why = processortests.PROCESSOR_RESULTS_NOTE_EN if results else "ccanalytics does not change them"
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
    started = experiments.start_test(get_engine(), _test(test_id).id, by=actor())  # audited by the library
    prompts_changed()
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
    stopped = experiments.stop_test(get_engine(), test.id, by=actor(), decision=b["decision"], note=b["note"])
    prompts_changed()  # audited by the library
    return ok(stopped.to_dict())


@bp.get("/prompts/ab-tests/<test_id>/results")
@query()
def ab_test_results(q, test_id: str):
    """Per-variant metrics, comparisons with A (CIs, p-values), SRM check and a recommendation."""
    test = _test(test_id, results=True)
    if test.started_at is None:
        raise Conflict(f"test {test.test_name!r} has not started")
    return ok(abresults.results(get_engine(), test.id).to_dict())
