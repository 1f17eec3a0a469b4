"""Prometheus exporter over the database (source="calllog").

Counters and histograms are cumulative since the exporter started, seeded on the first scrape with
everything already in the database, then advanced by what was derived or scored since the previous
scrape (watermarks on call_metrics.computed_at and call_scores.created_at, read with a small lag so rows of
transactions still committing are not skipped). A re-delivered call is counted again; retention
deletes are not subtracted (counters never go down).

Each scrape first derives call_metrics for recent calls that lack them (unless ``derive=False``, for
a read-only database role; then the scheduler's daily-stats job derives them).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from . import callmetrics, signals, telemetry
from .telemetry import BY_NAME

SOURCE = "calllog"
CONTENT_TYPE = CONTENT_TYPE_LATEST
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# histogram name -> SQL expression yielding one value per observation from the batch ``b``
_HIST_VALUES = {
    "cca_call_duration_seconds": "SELECT duration_seconds::float8 AS v FROM b WHERE duration_seconds IS NOT NULL",
    "cca_call_cost_usd": "SELECT total_cost_usd AS v FROM b WHERE total_cost_usd IS NOT NULL",
    "cca_response_latency_seconds": "SELECT x / 1000.0 AS v FROM b, unnest(b.response_ms) x",
    "cca_stt_latency_seconds": "SELECT x / 1000.0 AS v FROM b, unnest(b.stt_ms) x",
    "cca_llm_ttft_seconds": "SELECT x / 1000.0 AS v FROM b, unnest(b.llm_ms) x",
    "cca_tts_latency_seconds": "SELECT x / 1000.0 AS v FROM b, unnest(b.tts_ms) x",
}


def _bucket_array(values_sql: str, buckets: tuple[float, ...]) -> str:
    """SQL for ARRAY[count(v <= b1), …, count(*), sum(v)] over ``values_sql``. The bucket bounds are
    constants of the catalogue (never user input)."""
    cols = ", ".join(f"count(*) FILTER (WHERE v <= {float(b)!r})::float8" for b in buckets)
    return f"(SELECT ARRAY[{cols}, count(*)::float8, coalesce(sum(v), 0)::float8] FROM ({values_sql}) o)"


def _calls_query() -> str:
    hists = ",\n  ".join(f"{_bucket_array(sql, BY_NAME[name].buckets)} AS {name}" for name, sql in _HIST_VALUES.items())
    return f"""
WITH b AS MATERIALIZED (
    SELECT m.*, c.scenario, c.transferred_to_operator, c.transfer_reason, c.order_id, c.fitting_booking_id,
           c.duration_seconds, c.total_cost_usd, c.cost_breakdown, c.ab_test_id, c.ab_variant
    FROM call_metrics m
    JOIN cca_calls c ON c.id = m.call_id AND c.started_at = m.started_at
    WHERE m.computed_at > :lo AND m.computed_at <= :hi
)
SELECT
  (SELECT coalesce(jsonb_agg(jsonb_build_array(scenario, transferred_to_operator, transfer_reason, n)), '[]')
     FROM (SELECT scenario, transferred_to_operator, transfer_reason, count(*) AS n FROM b GROUP BY 1, 2, 3) g)
     AS outcomes,
  (SELECT count(*) FROM b WHERE order_id IS NOT NULL) AS orders,
  (SELECT count(*) FROM b WHERE fitting_booking_id IS NOT NULL) AS fittings,
  (SELECT coalesce(sum(stt_reasks), 0) FROM b) AS reasks,
  (SELECT count(*) FROM b WHERE rejected_tool_calls > :max_rejected) AS anomalies,
  (SELECT count(*) FROM b) AS calls,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(tool_name, status, n, suspicious)), '[]') FROM (
      SELECT tc.tool_name,
             CASE WHEN tc.success THEN 'ok'
                  WHEN tc.tool_result::text ~* :rejected_regex THEN 'rejected' ELSE 'error' END AS status,
             count(*) AS n,
             count(*) FILTER (WHERE tc.tool_args @? CAST(:suspicious_path AS jsonpath)) AS suspicious
      FROM call_tool_calls tc JOIN b ON tc.call_id = b.call_id
      GROUP BY 1, 2) t) AS tools,
  (SELECT coalesce(jsonb_object_agg(k, usd), '{{}}') FROM (
      SELECT e.key AS k, sum((e.value)::text::float8) AS usd
      FROM b, jsonb_each(b.cost_breakdown) e
      WHERE jsonb_typeof(e.value) = 'number' AND e.key = ANY(:cost_components)
      GROUP BY 1) cst) AS costs,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(test_name, ab_variant, transferred_to_operator, n)), '[]') FROM (
      SELECT t.test_name, b.ab_variant, b.transferred_to_operator, count(*) AS n
      FROM b JOIN cca_ab_tests t ON t.id = b.ab_test_id
      WHERE b.ab_variant IS NOT NULL GROUP BY 1, 2, 3) ab) AS ab,
  {hists}
"""


def _quality_query() -> str:
    buckets = BY_NAME["cca_quality_score"].buckets
    overall = _bucket_array("SELECT quality_score AS v FROM q", buckets)
    crit_cols = ", ".join(f"count(*) FILTER (WHERE v <= {float(b)!r})::float8" for b in buckets)
    return f"""
WITH q AS MATERIALIZED (
    SELECT overall_score AS quality_score, details AS quality_details FROM call_scores
    WHERE created_at > :lo AND created_at <= :hi AND is_current
)
SELECT {overall} AS overall,
  (SELECT coalesce(jsonb_object_agg(k, arr), '{{}}') FROM (
      SELECT k, to_jsonb(ARRAY[{crit_cols}, count(*)::float8, coalesce(sum(v), 0)::float8]) AS arr
      FROM (SELECT e.key AS k, (e.value ->> 'score')::float8 AS v
            FROM q, jsonb_each(CASE WHEN jsonb_typeof(q.quality_details -> 'criteria') = 'object'
                                    THEN q.quality_details -> 'criteria' ELSE '{{}}'::jsonb END) e
            WHERE jsonb_typeof(e.value -> 'score') = 'number'
              AND coalesce(e.value ->> 'applicable', 'true') <> 'false') s
      GROUP BY k) c) AS criteria
"""


_GAUGES_SQL = """
SELECT
  (SELECT count(*) FROM cca_calls
    WHERE started_at >= now() - interval '7 days' AND NOT quality_scored) AS backlog,
  (SELECT extract(epoch FROM max(coalesce(ended_at, started_at))) FROM cca_calls
    WHERE started_at >= now() - interval '7 days') AS last_call,
  (SELECT count(*) FROM scoring_queue
    WHERE status = 'failed' AND updated_at >= now() - interval '24 hours') AS scoring_failed
"""


@dataclass
class _Hist:
    buckets: tuple[float, ...]
    counts: list[float] = field(default_factory=list)  # cumulative count of values <= bound
    count: float = 0.0
    total: float = 0.0

    def add(self, arr: list[float]) -> None:
        n = len(self.buckets)
        if not self.counts:
            self.counts = [0.0] * n
        for i in range(n):
            self.counts[i] += arr[i]
        self.count += arr[n]
        self.total += arr[n + 1]


class CallLogCollector(Collector):
    """A prometheus_client collector reading the database at each scrape."""

    def __init__(self, engine: Engine, *, lag_seconds: float = 10.0, derive: bool = True) -> None:
        self.engine = engine
        self.lag = timedelta(seconds=lag_seconds)
        self.derive = derive
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, tuple[str, ...]], float] = defaultdict(float)
        self._hists: dict[tuple[str, tuple[str, ...]], _Hist] = {}
        self._gauges: dict[tuple[str, tuple[str, ...]], float] = {}
        self._wm_metrics = EPOCH
        self._wm_scores = EPOCH
        self._up = 0.0
        self._refresh_seconds = 0.0
        self._last_error: str | None = None

    # -- state updates
    def _inc(self, name: str, value: float, **labels: str) -> None:
        if value:
            self._counters[(name, self._labels(name, labels))] += float(value)

    def _hist(self, name: str, arr: list[float], **labels: str) -> None:
        key = (name, self._labels(name, labels))
        hist = self._hists.setdefault(key, _Hist(BY_NAME[name].buckets))
        hist.add(arr)

    @staticmethod
    def _labels(name: str, labels: dict[str, str]) -> tuple[str, ...]:
        labels = {"source": SOURCE, **labels}
        return tuple(labels[k] for k in BY_NAME[name].labels)

    def refresh(self) -> None:
        """Read what is new since the previous scrape. Safe to call from several threads."""
        with self._lock:
            started = time.perf_counter()
            try:
                self._refresh()
                self._up = 1.0
                self._last_error = None
            except sa.exc.SQLAlchemyError as exc:
                self._up = 0.0
                self._last_error = str(exc).splitlines()[0][:200]
            self._refresh_seconds = time.perf_counter() - started

    def _refresh(self) -> None:
        params = signals.sql_params()
        if self.derive:
            with self.engine.begin() as conn:
                db_now = conn.execute(sa.text("SELECT now()")).scalar_one()
                callmetrics.derive(conn, db_now - timedelta(days=2), db_now + timedelta(hours=1))
        with self.engine.connect() as conn:
            now = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
            hi = now - self.lag if self._wm_metrics > EPOCH else now
            if hi > self._wm_metrics:
                row = conn.execute(
                    sa.text(_calls_query()),
                    {
                        "lo": self._wm_metrics,
                        "hi": hi,
                        "max_rejected": signals.REJECTED_TOOLS_PER_CALL,
                        "cost_components": list(telemetry.COST_COMPONENTS),
                        **params,
                    },
                ).one()
                self._add_calls(row)
                self._wm_metrics = hi
            hi_q = now - self.lag if self._wm_scores > EPOCH else now
            if hi_q > self._wm_scores:
                row = conn.execute(sa.text(_quality_query()), {"lo": self._wm_scores, "hi": hi_q}).one()
                self._hist("cca_quality_score", row.overall)
                for criterion, arr in row.criteria.items():
                    self._hist("cca_quality_criterion_score", arr, criterion=telemetry.criterion_label(criterion))
                self._wm_scores = hi_q
            g = conn.execute(sa.text(_GAUGES_SQL)).one()
            self._gauges[("cca_scoring_backlog_calls", (SOURCE,))] = float(g.backlog)
            self._gauges[("cca_scoring_failed_calls", (SOURCE,))] = float(g.scoring_failed)
            if g.last_call is not None:
                self._gauges[("cca_last_call_timestamp_seconds", (SOURCE,))] = float(g.last_call)

    def _add_calls(self, row) -> None:
        for scenario, transferred, reason, n in row.outcomes:
            self._inc(
                "cca_calls_total",
                n,
                scenario=telemetry.scenario_label(scenario),
                outcome=telemetry.outcome_label(transferred),
                transfer_reason=telemetry.reason_label(transferred, reason),
            )
        self._inc("cca_orders_created_total", row.orders)
        self._inc("cca_fittings_booked_total", row.fittings)
        self._inc("cca_stt_reasks_total", row.reasks)
        self._inc("cca_validation_anomaly_calls_total", row.anomalies)
        for tool, status, n, suspicious in row.tools:
            self._inc("cca_tool_calls_total", n, tool=telemetry.tool_label(tool), status=status)
            self._inc("cca_suspicious_tool_calls_total", suspicious, tool=telemetry.tool_label(tool))
            if status != "ok":
                self._inc("cca_component_errors_total", n, component="tool")
        # the priced components only: they add up to total_cost_usd (other numbers in the breakdown,
        # such as what the call processor reported, are not spend of their own)
        for component, usd in row.costs.items():
            self._inc("cca_cost_usd_total", usd, component=component)
        for test, variant, transferred, n in row.ab:
            self._inc("cca_ab_calls_total", n, test=test, variant=variant, outcome=telemetry.outcome_label(transferred))
        for name in _HIST_VALUES:
            self._hist(name, getattr(row, name))

    # -- exposition
    def collect(self) -> Iterator:
        self.refresh()
        with self._lock:
            yield from self._families()

    def _families(self) -> Iterator:
        by_name: dict[str, list] = defaultdict(list)
        for (name, labels), value in self._counters.items():
            by_name[name].append((labels, value))
        for d in telemetry.CATALOG:
            if d.kind == "counter" and d.name in by_name:
                fam = CounterMetricFamily(d.base, d.help, labels=d.labels)
                for labels, value in sorted(by_name[d.name]):
                    fam.add_metric(list(labels), value)
                yield fam
            elif d.kind == "histogram":
                items = sorted((k[1], h) for k, h in self._hists.items() if k[0] == d.name)
                if not items:
                    continue
                fam = HistogramMetricFamily(d.name, d.help, labels=d.labels)
                for labels, h in items:
                    buckets = [(_le(b), c) for b, c in zip(h.buckets, h.counts, strict=True)]
                    buckets.append(("+Inf", h.count))
                    fam.add_metric(list(labels), buckets, sum_value=h.total)
                yield fam
            elif d.kind == "gauge":
                items = sorted((k[1], v) for k, v in self._gauges.items() if k[0] == d.name)
                if items:
                    fam = GaugeMetricFamily(d.name, d.help, labels=d.labels)
                    for labels, value in items:
                        fam.add_metric(list(labels), value)
                    yield fam
        yield GaugeMetricFamily("cca_exporter_up", "1 if the last database read succeeded.", value=self._up)
        yield GaugeMetricFamily(
            "cca_exporter_refresh_seconds", "How long the last database read took.", value=self._refresh_seconds
        )

    @property
    def last_error(self) -> str | None:
        return self._last_error


def _le(bound: float) -> str:
    return repr(float(bound))


def make_registry(engine: Engine, *, derive: bool = True, lag_seconds: float = 10.0) -> CollectorRegistry:
    """A registry holding the database collector (what /metrics serves)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CallLogCollector(engine, derive=derive, lag_seconds=lag_seconds))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``registry``."""
    return generate_latest(registry)


def wsgi_app(registry: CollectorRegistry):
    """A WSGI app serving ``registry`` at /metrics (and at /, for convenience)."""
    return make_wsgi_app(registry)
