"""Prometheus exporter over the database (source="calllog").

Counters and histograms are cumulative and never go down for the same data. A finished call is
counted once, when its metrics are first derived after it ended (call_metrics.final_at: a re-delivered
call is not counted again); a quality score once, the first score of its call (rescoring campaigns do
not add observations). Each scrape counts what was stamped since the previous one (watermarks read
with a small lag, so rows of transactions still committing are not skipped). The totals as of the
watermarks are checkpointed in cca_exporter_state: a restarted or second exporter process starts from
the checkpoint and counts only what is newer, and retention checkpoints before it deletes calls, so
neither a restart nor a purge lowers a counter. Every series carries the call's ``tenant`` (slug;
empty for a call whose tenant was deleted).

Each scrape first derives call_metrics for the calls of the last few hours (callmetrics.RECENT) that
lack them and checkpoints (unless
``derive=False``, for a read-only database role: then the scheduler's jobs derive, and retention
checkpoints; such an exporter still starts from the checkpoint).
"""

from __future__ import annotations

import json
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
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Engine

from ccanalytics.analytics import callmetrics, signals
from ccanalytics.core import timeutil
from ccanalytics.ops import exportgauges, telemetry
from ccanalytics.ops.telemetry import BY_NAME

SOURCE = "calllog"
CONTENT_TYPE = CONTENT_TYPE_LATEST
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# histogram name -> SQL yielding (t: tenant, v: one observation) from the batch ``b``
_HIST_VALUES = {
    "cca_call_duration_seconds": "SELECT t, duration_seconds::float8 AS v FROM b WHERE duration_seconds IS NOT NULL",
    "cca_call_cost_usd": "SELECT t, total_cost_usd AS v FROM b WHERE total_cost_usd IS NOT NULL",
    "cca_response_latency_seconds": "SELECT t, x / 1000.0 AS v FROM b, unnest(b.response_ms) x",
    "cca_stt_latency_seconds": "SELECT t, x / 1000.0 AS v FROM b, unnest(b.stt_ms) x",
    "cca_llm_ttft_seconds": "SELECT t, x / 1000.0 AS v FROM b, unnest(b.llm_ms) x",
    "cca_tts_latency_seconds": "SELECT t, x / 1000.0 AS v FROM b, unnest(b.tts_ms) x",
}


def _bucket_arrays(values_sql: str, buckets: tuple[float, ...], key: str = "t") -> str:
    """SQL for {key: [count(v <= b1), …, count(*), sum(v)]} over ``values_sql`` grouped by ``key``. The
    bucket bounds are constants of the catalogue (never user input)."""
    cols = ", ".join(f"count(*) FILTER (WHERE v <= {float(b)!r})::float8" for b in buckets)
    return (
        f"(SELECT coalesce(jsonb_object_agg(k, arr), '{{}}') FROM ("  # noqa: S608 — constant SQL, key and float bounds
        f"SELECT {key} AS k, to_jsonb(ARRAY[{cols}, count(*)::float8, coalesce(sum(v), 0)::float8]) AS arr "
        f"FROM ({values_sql}) o GROUP BY 1) h)"
    )


def _calls_query() -> str:
    hists = ",\n  ".join(
        f"{_bucket_arrays(sql, BY_NAME[name].buckets)} AS {name}" for name, sql in _HIST_VALUES.items()
    )
    return f"""
WITH b AS MATERIALIZED (
    SELECT m.*, coalesce(c.tenant, '') AS t, c.scenario, c.transferred_to_operator, c.transfer_reason,
           c.order_id, c.fitting_booking_id, c.duration_seconds, c.total_cost_usd, c.cost_breakdown,
           c.ab_test_id, c.ab_variant
    FROM call_metrics m
    JOIN cca_calls c ON c.id = m.call_id AND c.started_at = m.started_at
    WHERE m.final_at > :lo AND m.final_at <= :hi
)
SELECT
  (SELECT coalesce(jsonb_agg(jsonb_build_array(t, scenario, transferred_to_operator, transfer_reason, n)), '[]')
     FROM (SELECT t, scenario, transferred_to_operator, transfer_reason, count(*) AS n FROM b GROUP BY 1, 2, 3, 4) g)
     AS outcomes,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(t, orders, fittings, reasks, anomalies)), '[]') FROM (
      SELECT t, count(*) FILTER (WHERE order_id IS NOT NULL) AS orders,
             count(*) FILTER (WHERE fitting_booking_id IS NOT NULL) AS fittings,
             coalesce(sum(stt_reasks), 0) AS reasks,
             count(*) FILTER (WHERE rejected_tool_calls > :max_rejected) AS anomalies
      FROM b GROUP BY 1) p) AS per_tenant,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(t, tool_name, status, n, suspicious)), '[]') FROM (
      SELECT b.t, tc.tool_name,
             CASE WHEN tc.success THEN 'ok'
                  WHEN tc.tool_result::text ~* :rejected_regex THEN 'rejected' ELSE 'error' END AS status,
             count(*) AS n,
             count(*) FILTER (WHERE tc.tool_args @? CAST(:suspicious_path AS jsonpath)) AS suspicious
      FROM call_tool_calls tc JOIN b ON tc.call_id = b.call_id
      GROUP BY 1, 2, 3) tl) AS tools,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(t, k, usd)), '[]') FROM (
      SELECT b.t, e.key AS k, sum((e.value)::text::float8) AS usd
      FROM b, jsonb_each(b.cost_breakdown) e
      WHERE jsonb_typeof(e.value) = 'number' AND e.key = ANY(:cost_components)
      GROUP BY 1, 2) cst) AS costs,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(t, test_name, ab_variant, transferred_to_operator, n)), '[]') FROM (
      SELECT b.t, at.test_name, b.ab_variant, b.transferred_to_operator, count(*) AS n
      FROM b JOIN cca_ab_tests at ON at.id = b.ab_test_id
      WHERE b.ab_variant IS NOT NULL GROUP BY 1, 2, 3, 4) ab) AS ab,
  {hists}
"""  # noqa: S608 — histogram SQL from _HIST_VALUES and catalogue buckets (constants); values bound


def _quality_query() -> str:
    buckets = BY_NAME["cca_quality_score"].buckets
    overall = _bucket_arrays("SELECT t, quality_score AS v FROM q", buckets)
    criteria = _bucket_arrays(
        """SELECT jsonb_build_array(t, e.key)::text AS tk, (e.value ->> 'score')::float8 AS v
           FROM q, jsonb_each(CASE WHEN jsonb_typeof(q.quality_details -> 'criteria') = 'object'
                                   THEN q.quality_details -> 'criteria' ELSE '{}'::jsonb END) e
           WHERE jsonb_typeof(e.value -> 'score') = 'number'
             AND coalesce(e.value ->> 'applicable', 'true') <> 'false'""",
        buckets,
        key="tk",
    )
    # the first score of each call: rescoring (a new judge, a re-delivered call) adds no observation
    return f"""
WITH q AS MATERIALIZED (
    SELECT coalesce(tn.slug, '') AS t, s.overall_score AS quality_score, s.details AS quality_details
    FROM call_scores s
    LEFT JOIN calls c ON c.id = s.call_id AND c.started_at = s.started_at
    LEFT JOIN tenants tn ON tn.id = c.tenant_id
    WHERE s.created_at > :lo AND s.created_at <= :hi
      AND NOT EXISTS (SELECT 1 FROM call_scores p
                      WHERE p.call_id = s.call_id AND (p.created_at, p.id) < (s.created_at, s.id))
)
SELECT {overall} AS overall, {criteria} AS criteria
"""  # noqa: S608 — SQL built by _bucket_arrays from constants and catalogue buckets


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


CHECKPOINT = "calllog"
CHECKPOINT_EVERY = timedelta(seconds=60)
# the gauges read two days of calls: at most once a minute, not at every scrape
GAUGES_EVERY = timedelta(seconds=60)

_LOAD_SQL = """
SELECT metrics_watermark, scores_watermark, counters, histograms FROM cca_exporter_state WHERE name = :name
"""
# a checkpoint only moves forward: an older process never overwrites a newer one
_SAVE_SQL = """
INSERT INTO cca_exporter_state (name, metrics_watermark, scores_watermark, counters, histograms, updated_at)
VALUES (:name, :wm_metrics, :wm_scores, :counters, :histograms, now())
ON CONFLICT (name) DO UPDATE SET
    metrics_watermark = EXCLUDED.metrics_watermark, scores_watermark = EXCLUDED.scores_watermark,
    counters = EXCLUDED.counters, histograms = EXCLUDED.histograms, updated_at = EXCLUDED.updated_at
WHERE cca_exporter_state.metrics_watermark <= EXCLUDED.metrics_watermark
  AND cca_exporter_state.scores_watermark <= EXCLUDED.scores_watermark
"""


class CallLogCollector(Collector):
    """A prometheus_client collector reading the database at each scrape.

    ``persist`` (default: as ``derive``) writes the checkpoint at most every ``CHECKPOINT_EVERY``;
    a read-only role passes ``derive=False`` and persists nothing."""

    def __init__(
        self,
        engine: Engine,
        *,
        lag_seconds: float = 10.0,
        derive: bool = True,
        persist: bool | None = None,
        tz: str = timeutil.DEFAULT_TZ,
    ) -> None:
        self.engine = engine
        self.tz = tz  # the local days of the scoring backlog (quality.scheduled_since)
        self.lag = timedelta(seconds=lag_seconds)
        self.derive = derive
        self.persist = derive if persist is None else persist
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, tuple[str, ...]], float] = defaultdict(float)
        self._hists: dict[tuple[str, tuple[str, ...]], _Hist] = {}
        self._gauges: dict[tuple[str, tuple[str, ...]], float] = {}
        self._wm_metrics = EPOCH
        self._wm_scores = EPOCH
        self._loaded = False
        self._saved_at: datetime | None = None
        self._gauges_at: datetime | None = None
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

    def refresh(self, *, checkpoint: bool = False) -> None:
        """Read what is new since the previous scrape. Safe to call from several threads. With
        ``checkpoint``, save the checkpoint now (and raise if the database cannot be read)."""
        with self._lock:
            started = time.perf_counter()
            try:
                self._refresh(force_save=checkpoint)
                self._up = 1.0
                self._last_error = None
            except sa.exc.SQLAlchemyError as exc:
                self._up = 0.0
                self._last_error = str(exc).splitlines()[0][:200]
                if checkpoint:
                    raise
            self._refresh_seconds = time.perf_counter() - started

    def _refresh(self, *, force_save: bool = False) -> None:
        params = signals.sql_params()
        if self.derive:
            with self.engine.begin() as conn:
                db_now = conn.execute(sa.text("SELECT now()")).scalar_one()
                callmetrics.derive(conn, db_now - callmetrics.RECENT, db_now + timedelta(hours=1))
        with self.engine.begin() as conn:
            if not self._loaded:
                self._load(conn)
            for (tenant,) in conn.execute(sa.text("SELECT slug FROM tenants")):
                self._zero_series(tenant)
            now = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
            hi = now - self.lag
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
            if hi > self._wm_scores:
                row = conn.execute(sa.text(_quality_query()), {"lo": self._wm_scores, "hi": hi}).one()
                for tenant, arr in row.overall.items():
                    self._hist("cca_quality_score", arr, tenant=tenant)
                for key, arr in row.criteria.items():
                    tenant, criterion = json.loads(key)
                    self._hist(
                        "cca_quality_criterion_score",
                        arr,
                        tenant=tenant,
                        criterion=telemetry.criterion_label(criterion),
                    )
                self._wm_scores = hi
            if self.persist and (force_save or self._saved_at is None or now - self._saved_at >= CHECKPOINT_EVERY):
                self._save(conn)
                self._saved_at = now
            if self._gauges_at is not None and now - self._gauges_at < GAUGES_EVERY:
                return
            self._gauges_at = now
            gauges: dict[tuple[str, tuple[str, ...]], float] = {}
            for g in exportgauges.read(conn, self.tz):
                gauges[("cca_scoring_backlog_calls", (SOURCE, g.tenant))] = float(g.backlog)
                gauges[("cca_scoring_failed_calls", (SOURCE, g.tenant))] = float(g.scoring_failed)
                if g.last_call is not None:
                    gauges[("cca_last_call_timestamp_seconds", (SOURCE, g.tenant))] = float(g.last_call)
            self._gauges = gauges

    def _zero_series(self, tenant: str) -> None:
        """Every counter of rare events at 0 for the tenant until its first event (telemetry)."""
        for d in telemetry.CATALOG:
            for combo in telemetry.zero_label_sets(d):
                self._counters.setdefault((d.name, self._labels(d.name, {"tenant": tenant, **combo})), 0.0)

    # -- the checkpoint
    def _load(self, conn: sa.Connection) -> None:
        row = conn.execute(sa.text(_LOAD_SQL), {"name": CHECKPOINT}).one_or_none()
        if row is not None:
            self._counters = defaultdict(float, {(name, tuple(labels)): value for name, labels, value in row.counters})
            self._hists = {
                (name, tuple(labels)): _Hist(BY_NAME[name].buckets, list(counts), count, total)
                for name, labels, counts, count, total in row.histograms
                if name in BY_NAME and len(counts) == len(BY_NAME[name].buckets)
            }
            self._wm_metrics, self._wm_scores = row.metrics_watermark, row.scores_watermark
        self._loaded = True

    def _save(self, conn: sa.Connection) -> None:
        counters = [[name, list(labels), value] for (name, labels), value in sorted(self._counters.items())]
        hists = [[name, list(labels), h.counts, h.count, h.total] for (name, labels), h in sorted(self._hists.items())]
        conn.execute(
            sa.text(_SAVE_SQL),
            {
                "name": CHECKPOINT,
                "wm_metrics": self._wm_metrics,
                "wm_scores": self._wm_scores,
                "counters": Jsonb(counters),
                "histograms": Jsonb(hists),
            },
        )

    def _add_calls(self, row) -> None:
        for tenant, scenario, transferred, reason, n in row.outcomes:
            self._inc(
                "cca_calls_total",
                n,
                tenant=tenant,
                scenario=telemetry.scenario_label(scenario),
                outcome=telemetry.outcome_label(transferred),
                transfer_reason=telemetry.reason_label(transferred, reason),
            )
        for tenant, orders, fittings, reasks, anomalies in row.per_tenant:
            self._inc("cca_orders_created_total", orders, tenant=tenant)
            self._inc("cca_fittings_booked_total", fittings, tenant=tenant)
            self._inc("cca_stt_reasks_total", reasks, tenant=tenant)
            self._inc("cca_validation_anomaly_calls_total", anomalies, tenant=tenant)
        for tenant, tool, status, n, suspicious in row.tools:
            self._inc("cca_tool_calls_total", n, tenant=tenant, tool=telemetry.tool_label(tool), status=status)
            self._inc("cca_suspicious_tool_calls_total", suspicious, tenant=tenant, tool=telemetry.tool_label(tool))
            if status != "ok":
                self._inc("cca_component_errors_total", n, tenant=tenant, component="tool")
        # the priced components only: they add up to total_cost_usd (other numbers in the breakdown,
        # such as what the call processor reported, are not spend of their own)
        for tenant, component, usd in row.costs:
            self._inc("cca_cost_usd_total", usd, tenant=tenant, component=component)
        for tenant, test, variant, transferred, n in row.ab:
            self._inc(
                "cca_ab_calls_total",
                n,
                tenant=tenant,
                test=test,
                variant=variant,
                outcome=telemetry.outcome_label(transferred),
            )
        for name in _HIST_VALUES:
            for tenant, arr in getattr(row, name).items():
                self._hist(name, arr, tenant=tenant)

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
                hists = sorted((k[1], h) for k, h in self._hists.items() if k[0] == d.name)
                if not hists:
                    continue
                hist_fam = HistogramMetricFamily(d.name, d.help, labels=d.labels)
                for labels, h in hists:
                    buckets = [(_le(b), c) for b, c in zip(h.buckets, h.counts, strict=True)]
                    buckets.append(("+Inf", h.count))
                    hist_fam.add_metric(list(labels), buckets, sum_value=h.total)
                yield hist_fam
            elif d.kind == "gauge":
                gauges = sorted((k[1], v) for k, v in self._gauges.items() if k[0] == d.name)
                if gauges:
                    gauge_fam = GaugeMetricFamily(d.name, d.help, labels=d.labels)
                    for labels, level in gauges:
                        gauge_fam.add_metric(list(labels), level)
                    yield gauge_fam
        yield GaugeMetricFamily("cca_exporter_up", "1 if the last database read succeeded.", value=self._up)
        yield GaugeMetricFamily(
            "cca_exporter_refresh_seconds", "How long the last database read took.", value=self._refresh_seconds
        )

    @property
    def last_error(self) -> str | None:
        return self._last_error


def _le(bound: float) -> str:
    return repr(float(bound))


def make_registry(
    engine: Engine, *, derive: bool = True, lag_seconds: float = 10.0, tz: str = timeutil.DEFAULT_TZ
) -> CollectorRegistry:
    """A registry holding the database collector (what /metrics serves); ``tz``: the settings' time zone."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CallLogCollector(engine, derive=derive, lag_seconds=lag_seconds, tz=tz))
    return registry


def checkpoint(engine: Engine, *, lag_seconds: float = 10.0) -> None:
    """Bring the exporter's checkpoint up to now (minus the lag). Retention calls this before it
    deletes calls, so counters already counted survive the purge."""
    CallLogCollector(engine, derive=False, persist=True, lag_seconds=lag_seconds).refresh(checkpoint=True)


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``registry``."""
    return generate_latest(registry)


def wsgi_app(registry: CollectorRegistry):
    """A WSGI app serving ``registry`` at /metrics (and at /, for convenience)."""
    return make_wsgi_app(registry)
