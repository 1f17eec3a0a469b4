-- Per local day (time zone :tz) of :days, whose calls start in [:start, :end): the call-side figures
-- of daily_stats and the calls' part of the day's fingerprint — over every tenant (tenant_id NULL) and
-- per tenant that had calls that day (its tenant_id; calls whose tenant was deleted count only in the
-- first). Weighted: counts over counts of the day's calls. (Customers' repeat calls and first-contact
-- resolution: daily_customers.sql.)
--
-- One scan of the calls, hashed into one group per UTC bin (:bin: an hour, or a quarter of one for a
-- zone whose offset is not whole hours), tenant, scenario and transfer reason (a few hundred a day),
-- each group's local hour converted once (time zone conversion per call was most of the cost); each tenant's day totals and breakdowns (scenario, transfer reason, hour) roll
-- up from those groups, and the day's over every tenant from the tenants' (small) rows, so no per-call
-- work is repeated per breakdown or per tenant. ccanalytics.metrics runs it with sorting disabled:
-- without statistics on the local-day expression the planner expects one group per call and would sort
-- every call instead of hashing them.
--
-- Orders and fitting bookings: the processor's ids (recorded_order_id, recorded_fitting_booking_id), plus
-- the references ccanalytics's ingest kept because they are not uuids (cca_call_ingest.order_ref,
-- booking_ref; a few rows, from their partial index: migration 029) — the same count as cca_calls'
-- order_id, without joining every call to cca_call_ingest.
--
-- calls_print changes when a call of the day (of the tenant) is added, removed, scored or costed: the
-- number of calls and the XOR of a hash of each call's id, score and cost. Exact integers, so it does not
-- depend on the order the rows are read in or on the groups it rolls up from. (A re-delivered call is
-- derived again first, which changes the metrics' part of the fingerprint: daily_latency.sql.) It must
-- stay the same expression as in daily_fingerprints.sql.
WITH f AS MATERIALIZED (
    -- the local hour of the group's UTC bin (:bin, at most an hour, on a boundary of the zone's
    -- offsets): converted once per group, not once per call
    SELECT date_trunc('hour', date_bin(CAST(:bin AS interval), c.started_at, TIMESTAMPTZ '2000-01-01 00:00+00')
                              AT TIME ZONE :tz)                                 AS lh,
           c.tenant_id,
           coalesce(c.scenario, 'unknown')                                          AS scenario,
           CASE WHEN c.transferred_to_operator THEN coalesce(c.transfer_reason, 'unknown') END AS reason,
           count(*)                                                                 AS n,
           count(*) FILTER (WHERE c.transferred_to_operator)                        AS transferred,
           sum(c.duration_seconds)                                                  AS sum_duration,
           count(c.duration_seconds)                                                AS n_duration,
           sum(c.quality_score)                                                     AS sum_quality,
           count(c.quality_score)                                                   AS scored_calls,
           sum(c.total_cost_usd)                                                    AS sum_cost,
           count(c.total_cost_usd)                                                  AS costed_calls,
           count(c.recorded_order_id)                                               AS orders_created,
           count(c.recorded_fitting_booking_id)                                     AS fittings_booked,
           count(*) FILTER (WHERE c.customer_id IS NULL AND NOT c.transferred_to_operator) AS fcr_anonymous,
           bit_xor(uuid_hash_extended(c.id, hashfloat8extended(coalesce(c.quality_score, -1),
                                                               hashfloat8extended(coalesce(c.total_cost_usd, -1), 0))))
                                                                                    AS call_hash
    FROM cca_calls c
    WHERE c.started_at >= :start AND c.started_at < :end
    GROUP BY date_bin(CAST(:bin AS interval), c.started_at, TIMESTAMPTZ '2000-01-01 00:00+00'), 2, 3, 4
),
-- the orders and bookings whose reference is not a uuid, per local day and tenant (the processor's own
-- id, when it has one, was counted above)
refs AS (
    SELECT (c.started_at AT TIME ZONE :tz)::date AS d, c.tenant_id,
           count(*) FILTER (WHERE c.order_id IS NULL AND i.order_ref IS NOT NULL)             AS orders,
           count(*) FILTER (WHERE c.fitting_booking_id IS NULL AND i.booking_ref IS NOT NULL) AS fittings
    FROM cca_call_ingest i
    JOIN calls c ON c.id = i.call_id AND c.started_at = i.started_at
    WHERE (i.order_ref IS NOT NULL OR i.booking_ref IS NOT NULL)
      AND i.started_at >= :start AND i.started_at < :end
    GROUP BY 1, 2
),
-- per day and tenant (calls without a tenant: tenant_id NULL), then the day over every tenant from
-- those rows: sums, counts and the XOR of the hashes roll up exactly
t AS (
    SELECT f.d, f.tenant_id, n, transferred, sum_duration, n_duration, sum_quality, scored_calls, sum_cost,
           costed_calls, orders_created + coalesce(r.orders, 0) AS orders_created,
           fittings_booked + coalesce(r.fittings, 0) AS fittings_booked, fcr_anonymous, call_hash
    FROM (SELECT lh::date AS d, tenant_id,
                 sum(n) AS n, sum(transferred) AS transferred, sum(sum_duration) AS sum_duration,
                 sum(n_duration) AS n_duration, sum(sum_quality) AS sum_quality, sum(scored_calls) AS scored_calls,
                 sum(sum_cost) AS sum_cost, sum(costed_calls) AS costed_calls, sum(orders_created) AS orders_created,
                 sum(fittings_booked) AS fittings_booked, sum(fcr_anonymous) AS fcr_anonymous,
                 bit_xor(call_hash) AS call_hash
          FROM f
          GROUP BY 1, 2) f
    LEFT JOIN refs r ON r.d = f.d AND r.tenant_id IS NOT DISTINCT FROM f.tenant_id
),
-- GROUPING(tenant_id) = 1: the row over every tenant; the group of calls without a tenant is dropped
days AS (
    SELECT d, tenant_id,
           sum(n)::int                                                 AS total_calls,
           sum(n - transferred)::int                                   AS resolved_by_bot,
           sum(transferred)::int                                       AS transferred,
           sum(sum_duration)::float8 / nullif(sum(n_duration), 0)::float8 AS avg_duration_seconds,
           sum(sum_quality) / nullif(sum(scored_calls), 0)::float8     AS avg_quality_score,
           sum(scored_calls)::int                                      AS scored_calls,
           coalesce(sum(sum_cost), 0)                                  AS total_cost_usd,
           sum(costed_calls)::int                                      AS costed_calls,
           sum(orders_created)::int                                    AS orders_created,
           sum(fittings_booked)::int                                   AS fittings_booked,
           sum(fcr_anonymous)::int                                     AS fcr_anonymous,
           concat_ws(':', sum(n), bit_xor(call_hash))                 AS calls_print
    FROM t
    GROUP BY GROUPING SETS ((d), (d, tenant_id))
    HAVING GROUPING(tenant_id) = 1 OR tenant_id IS NOT NULL
),
-- the breakdowns per day and tenant, and over every tenant rolled up from them
gt AS (
    SELECT lh::date AS d, tenant_id, scenario, reason, date_part('hour', lh)::int AS h,
           GROUPING(scenario, reason, date_part('hour', lh)::int) AS grp,
           sum(n) AS n, sum(transferred) AS transferred
    FROM f
    GROUP BY GROUPING SETS ((lh::date, tenant_id, scenario), (lh::date, tenant_id, reason),
                            (lh::date, tenant_id, date_part('hour', lh)::int))
),
g AS (
    SELECT d, tenant_id, scenario, reason, h, grp, n::int, transferred::int FROM gt WHERE tenant_id IS NOT NULL
    UNION ALL
    SELECT d, NULL, scenario, reason, h, grp, sum(n)::int, sum(transferred)::int
    FROM gt
    GROUP BY d, grp, scenario, reason, h
),
breakdowns AS (
    SELECT d, tenant_id,
           coalesce(jsonb_object_agg(scenario, n) FILTER (WHERE grp = 3), '{}')                 AS scenario_breakdown,
           coalesce(jsonb_object_agg(scenario, transferred) FILTER (WHERE grp = 3 AND transferred > 0), '{}')
                                                                                             AS scenario_transfers,
           coalesce(jsonb_object_agg(reason, n) FILTER (WHERE grp = 5 AND reason IS NOT NULL), '{}')
                                                                                             AS transfer_reasons,
           coalesce(jsonb_object_agg(h, n) FILTER (WHERE grp = 6), '{}')                        AS hourly_distribution
    FROM g
    GROUP BY d, tenant_id
)
SELECT days.*, b.scenario_breakdown, b.scenario_transfers, b.transfer_reasons, b.hourly_distribution
FROM days
JOIN breakdowns b ON b.d = days.d AND b.tenant_id IS NOT DISTINCT FROM days.tenant_id
WHERE days.d = ANY(CAST(:days AS date[]))
