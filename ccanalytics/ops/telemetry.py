"""The Prometheus metric catalogue, and the live-metrics API the call processor imports.

One catalogue defines every metric name, type, help text, label set and bucket layout. The exporter
(ccanalytics.ops.exporter, source="calllog": what the database knows about finished calls) and the call
processor (this module's ``LiveMetrics``, source="live": what happens right now) publish the same
names, so dashboards and alert rules read either source by its ``source`` label; every series also
carries ``tenant`` (the slug of the calls' tenant, "" when not known), for per-tenant dashboards.

Label values are bounded: scenarios, transfer reasons, tools and components outside the known sets
become "other"; call ids and phone numbers are never labels.

Usage in the call processor::

    from ccanalytics.ops.telemetry import LiveMetrics
    live = LiveMetrics()                      # registers on prometheus_client's default registry
    live.serve(9108)                          # or expose live.registry from your own /metrics
    live.call_started()
    live.observe_turn(stt_ms=240, llm_ttft_ms=710, tts_ms=180, response_ms=1350)
    live.component_error("tts")
    live.set_operators(queue=3, free=1)
    live.call_ended(scenario="tire_search", transferred=False, order_created=True, cost_usd=0.07)
    live.for_tenant("prokoleso").call_ended(...)   # series labelled with the call's tenant (slug)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from ccanalytics.analytics import signals
from ccanalytics.core import definitions
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.core.vocabulary import CRITERIA, SCENARIOS, TOOLS, TRANSFER_REASONS  # the bounded label sets

COMPONENTS = ("stt", "llm", "tts", "tool", "telephony")
COST_COMPONENTS = ("stt", "llm", "tts", "telephony", "judge")
MAX_SCENARIO_PARTS = 3


@dataclass(frozen=True)
class MetricDef:
    name: str  # full name; counters end in _total, units in the name (seconds, usd)
    kind: str  # counter | gauge | histogram
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def base(self) -> str:
        """The name prometheus_client wants (counters without _total)."""
        return self.name[: -len("_total")] if self.kind == "counter" else self.name


# every series names its source and the tenant (slug) its calls belong to ("" when not known)
S = ("source", "tenant")
# Latency buckets sit around the NFR budgets (p95 targets / alert thresholds):
# STT 0.5/0.7 s, LLM TTFT 1.0/1.5 s, TTS 0.4/0.6 s, end-to-end response 2.0/2.5 s (p95 > 3 s alert).
CATALOG: tuple[MetricDef, ...] = (
    MetricDef(
        "cca_calls_total",
        "counter",
        "Finished calls by scenario and outcome.",
        (*S, "scenario", "outcome", "transfer_reason"),
    ),
    MetricDef("cca_calls_started_total", "counter", "Calls answered by the bot.", S),
    MetricDef("cca_orders_created_total", "counter", "Calls that created an order.", S),
    MetricDef("cca_fittings_booked_total", "counter", "Calls that booked a tyre fitting.", S),
    MetricDef("cca_call_duration_seconds", "histogram", "Call duration.", S, (15, 30, 60, 90, 120, 180, 300, 600)),
    MetricDef(
        "cca_stt_latency_seconds",
        "histogram",
        "Speech-to-text latency per customer turn.",
        S,
        (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0, 1.5, 2.0, 5.0),
    ),
    MetricDef(
        "cca_llm_ttft_seconds",
        "histogram",
        "LLM time to first token per bot turn.",
        S,
        (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0),
    ),
    MetricDef(
        "cca_tts_latency_seconds",
        "histogram",
        "Text-to-speech latency per bot turn.",
        S,
        (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 2.0),
    ),
    MetricDef(
        "cca_response_latency_seconds",
        "histogram",
        "End of customer speech to start of bot speech, per bot reply.",
        S,
        (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 20.0),
    ),
    MetricDef(
        "cca_tool_calls_total",
        "counter",
        "Agent tool calls by tool and status (ok, error, rejected).",
        (*S, "tool", "status"),
    ),
    MetricDef(
        "cca_suspicious_tool_calls_total",
        "counter",
        "Tool calls with manipulated-looking arguments (price <= 0, quantity > 50).",
        (*S, "tool"),
    ),
    MetricDef(
        "cca_validation_anomaly_calls_total",
        "counter",
        f"Calls with more than {signals.REJECTED_TOOLS_PER_CALL} rejected tool calls.",
        S,
    ),
    MetricDef("cca_stt_reasks_total", "counter", "Bot turns asking the customer to repeat.", S),
    MetricDef("cca_component_errors_total", "counter", "Errors by pipeline component.", (*S, "component")),
    MetricDef(
        "cca_call_cost_usd",
        "histogram",
        "Cost of one call, USD.",
        S,
        (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0),
    ),
    MetricDef("cca_cost_usd_total", "counter", "Money spent, USD, by component.", (*S, "component")),
    MetricDef(
        "cca_ab_calls_total",
        "counter",
        "Calls in A/B tests by variant and outcome.",
        (*S, "test", "variant", "outcome"),
    ),
    MetricDef(
        "cca_quality_score",
        "histogram",
        "Overall quality score of scored calls (0-1).",
        S,
        (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    ),
    MetricDef(
        "cca_quality_criterion_score",
        "histogram",
        "Quality score per criterion (0-1), applicable only.",
        (*S, "criterion"),
        (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    ),
    MetricDef(
        "cca_scoring_backlog_calls",
        "gauge",
        "Finished calls of today and yesterday (local days: what the scheduler scores) not scored yet.",
        S,
    ),
    MetricDef(
        "cca_scoring_failed_calls", "gauge", "Calls whose scoring failed in the last 24 hours (judge failures).", S
    ),
    MetricDef("cca_active_calls", "gauge", "Calls in progress.", S),
    MetricDef("cca_operator_queue_length", "gauge", "Callers waiting for a human operator.", S),
    MetricDef("cca_operators_free", "gauge", "Human operators free to take a call.", S),
    MetricDef("cca_last_call_timestamp_seconds", "gauge", "When the newest known call ended (Unix time).", S),
)
BY_NAME = {m.name: m for m in CATALOG}


# ------------------------------------------------------------------------------- label hygiene
def scenario_label(scenario: str | None) -> str:
    """A bounded scenario label: known names (or a compound of up to 3 of them), else 'other'."""
    if not scenario:
        return "unknown"
    parts = [p.strip() for p in scenario.split("+")]
    if len(parts) <= MAX_SCENARIO_PARTS and all(p in SCENARIOS for p in parts):
        return " + ".join(parts)
    return "other"


def reason_label(transferred: bool, reason: str | None) -> str:
    if not transferred:
        return "none"
    if not reason:
        return "unknown"
    return reason if reason in TRANSFER_REASONS else "other"


def outcome_label(transferred: bool) -> str:
    return "operator" if transferred else "bot"


def tool_label(tool: str | None) -> str:
    return tool if tool in TOOLS else "other"


def component_label(component: str | None) -> str:
    return component if component in COMPONENTS else "other"


def criterion_label(criterion: str) -> str:
    return criterion if criterion in CRITERIA else "other"


# --------------------------------------------------------------------------------- live metrics
# Counters of rare events start at 0 for every value of their bounded labels (and, in the exporter, for
# every tenant), so "increase over the last hour" is 0 instead of "no data" on a dashboard, and a rule
# sees the first event as an increase (a series that appears at 1 is no increase to Prometheus).
_ZERO_VALUES: dict[str, tuple[str, ...]] = {"tool": TOOLS, "component": COMPONENTS}
# spend starts at 0 for the components every call is priced by (not the judge's, which is not per call)
_ZERO_VALUES_OF = {("cca_cost_usd_total", "component"): definitions.PRICED_COMPONENTS}


def zero_label_sets(d: MetricDef) -> list[dict[str, str]]:
    """The label values (besides source and tenant) a counter starts at 0 with; [] for a counter whose
    labels are not all bounded, and [{}] for a counter with no other label."""
    if d.kind != "counter":
        return []
    extra = [label for label in d.labels if label not in S]
    if not all(label in _ZERO_VALUES for label in extra):
        return []
    combos: list[dict[str, str]] = [{}]
    for label in extra:
        values = _ZERO_VALUES_OF.get((d.name, label), _ZERO_VALUES[label])
        combos = [{**c, label: value} for c in combos for value in values]
    return combos


class LiveMetrics:
    """Live metrics recorded by the call processor, with the catalogue's names and source="live"."""

    SOURCE = "live"

    def __init__(self, registry: CollectorRegistry | None = REGISTRY, *, tenant: str = "") -> None:
        self.registry = registry
        self.tenant = tenant
        self._m: dict[str, Counter | Gauge | Histogram] = {}
        for d in CATALOG:
            if d.name in _LIVE_ONLY_EXCLUDED:
                continue
            if d.kind == "counter":
                self._m[d.name] = Counter(d.base, d.help, registry=registry, labelnames=d.labels)
                self._zero(d)
            elif d.kind == "gauge":
                self._m[d.name] = Gauge(d.base, d.help, registry=registry, labelnames=d.labels)
            else:
                self._m[d.name] = Histogram(d.base, d.help, buckets=d.buckets, registry=registry, labelnames=d.labels)

    def _zero(self, d: MetricDef) -> None:
        for combo in zero_label_sets(d):
            self._m[d.name].labels(source=self.SOURCE, tenant=self.tenant, **combo)

    def for_tenant(self, tenant: str) -> LiveMetrics:
        """The same metrics recorded for the calls of ``tenant`` (its slug): a processor serving several
        tenants keeps one LiveMetrics and records each call through ``live.for_tenant(slug)``."""
        view = copy.copy(self)
        view.tenant = tenant
        for d in CATALOG:
            if d.kind == "counter" and d.name in view._m:
                view._zero(d)
        return view

    def _get(self, name: str, **labels: str):
        return self._m[name].labels(source=self.SOURCE, tenant=self.tenant, **labels)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Expose the metrics on http://addr:port/metrics (a background thread)."""
        if self.registry is None:
            raise InvalidArgument("these live metrics have no registry (registry=None): there is nothing to serve")
        start_http_server(port, addr=addr, registry=self.registry)

    # -- calls
    def call_started(self) -> None:
        self._get("cca_calls_started_total").inc()
        self._get("cca_active_calls").inc()

    def call_ended(
        self,
        *,
        scenario: str | None,
        transferred: bool,
        transfer_reason: str | None = None,
        order_created: bool = False,
        fitting_booked: bool = False,
        duration_seconds: float | None = None,
        cost_usd: float | None = None,
        cost_breakdown: dict[str, float] | None = None,
        ab_test: str | None = None,
        ab_variant: str | None = None,
    ) -> None:
        self._get("cca_active_calls").dec()
        self._get(
            "cca_calls_total",
            scenario=scenario_label(scenario),
            outcome=outcome_label(transferred),
            transfer_reason=reason_label(transferred, transfer_reason),
        ).inc()
        if order_created:
            self._get("cca_orders_created_total").inc()
        if fitting_booked:
            self._get("cca_fittings_booked_total").inc()
        if duration_seconds is not None:
            self._get("cca_call_duration_seconds").observe(duration_seconds)
        if cost_usd is not None:
            self._get("cca_call_cost_usd").observe(cost_usd)
        for component, usd in (cost_breakdown or {}).items():
            label = component if component in COST_COMPONENTS else "other"
            self._get("cca_cost_usd_total", component=label).inc(max(0.0, float(usd)))
        if ab_test and ab_variant:
            self._get("cca_ab_calls_total", test=ab_test, variant=ab_variant, outcome=outcome_label(transferred)).inc()

    # -- turns
    def observe_turn(
        self,
        *,
        stt_ms: float | None = None,
        llm_ttft_ms: float | None = None,
        tts_ms: float | None = None,
        response_ms: float | None = None,
    ) -> None:
        for name, value in (
            ("cca_stt_latency_seconds", stt_ms),
            ("cca_llm_ttft_seconds", llm_ttft_ms),
            ("cca_tts_latency_seconds", tts_ms),
            ("cca_response_latency_seconds", response_ms),
        ):
            if value is not None:
                self._get(name).observe(value / 1000.0)

    def reask(self) -> None:
        self._get("cca_stt_reasks_total").inc()

    def tool_call(self, tool: str, *, success: bool, result: object = None, args: object = None) -> None:
        status = "ok" if success else ("rejected" if signals.is_rejected(success, result) else "error")
        self._get("cca_tool_calls_total", tool=tool_label(tool), status=status).inc()
        if not success:
            self.component_error("tool")
        if args is not None and signals.suspicious_args(args):
            self._get("cca_suspicious_tool_calls_total", tool=tool_label(tool)).inc()

    def validation_anomaly(self) -> None:
        """Call once per call that had more than REJECTED_TOOLS_PER_CALL rejected tool calls."""
        self._get("cca_validation_anomaly_calls_total").inc()

    def component_error(self, component: str) -> None:
        self._get("cca_component_errors_total", component=component_label(component)).inc()

    # -- operators
    def set_operators(self, *, queue: int, free: int) -> None:
        self._get("cca_operator_queue_length").set(queue)
        self._get("cca_operators_free").set(free)

    def set_last_call(self, unix_seconds: float) -> None:
        self._get("cca_last_call_timestamp_seconds").set(unix_seconds)


# the live side does not score quality nor keep a backlog: those come only from the database
_LIVE_ONLY_EXCLUDED = frozenset(
    {"cca_quality_score", "cca_quality_criterion_score", "cca_scoring_backlog_calls", "cca_scoring_failed_calls"}
)


def reference_markdown() -> str:
    """The metric catalogue as a Markdown table (docs/metrics.md embeds it; a test keeps it current)."""
    lines = ["| Metric | Type | Labels | Buckets | Meaning |", "|---|---|---|---|---|"]
    for d in CATALOG:
        buckets = ", ".join(f"{b:g}" for b in d.buckets) if d.buckets else ""
        lines.append(f"| `{d.name}` | {d.kind} | {', '.join(d.labels)} | {buckets} | {d.help} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(reference_markdown(), end="")
