-- The calls of [:start, :end) whose call_metrics must be derived (sql/queries/call_metrics.sql derives
-- them, given as arrays, so that its plan follows how many there are: usually none or a handful, where
-- a plan made for an estimate of thousands read every turn of the range). With :only_stale, only the
-- calls whose metrics are missing or out of date, found without joining every call of the range to three
-- tables (a call the call processor wrote itself carries no change stamp):
--   * calls without metrics: each UTC day of the range is compared on both sides — the number of
--     calls and the XOR of a hash of their ids, from index-only scans of calls (started_at, id) and
--     call_metrics (started_at, call_id) (migration 024) — and only the days that differ are searched
--     call by call (an anti-join on call_metrics' key). Exact: a day whose calls and metrics hold the
--     same ids compares equal, any other day (up to a 64-bit hash collision) does not;
--   * calls derived while in progress that have ended since: the partial index on call_metrics
--     (started_at) WHERE call_ended_at IS NULL (migration 024), joined to their calls row;
--   * calls delivered (or re-delivered) through ccanalytics after their metrics were derived
--     (computed_at < cca_call_ingest.ingested_at): with :ingested_after, only those delivered after
--     it, through the index on ingested_at; without it, every delivered call of the range.
-- Without :only_stale, every call of the range. Ordered by start, so that a batch spans few partitions.
WITH call_days AS (
    SELECT date_bin('1 day', started_at, TIMESTAMPTZ '2000-01-01 00:00+00') AS b, count(*) AS n,
           bit_xor(uuid_hash_extended(id, 0)) AS x
    FROM calls
    WHERE CAST(:only_stale AS boolean) AND started_at >= :start AND started_at < :end
    GROUP BY 1
),
metric_days AS (
    SELECT date_bin('1 day', started_at, TIMESTAMPTZ '2000-01-01 00:00+00') AS b, count(*) AS n,
           bit_xor(uuid_hash_extended(call_id, 0)) AS x
    FROM call_metrics
    WHERE CAST(:only_stale AS boolean) AND started_at >= :start AND started_at < :end
    GROUP BY 1
),
-- the UTC days with a call that has no metrics (a day with metrics of deleted calls only is left alone)
unmatched AS MATERIALIZED (
    SELECT c.b FROM call_days c LEFT JOIN metric_days m ON m.b = c.b
    WHERE m.b IS NULL OR m.n <> c.n OR m.x <> c.x
),
target AS (
    SELECT c.id, c.started_at, c.ended_at, c.tenant_id
    FROM calls c
    WHERE NOT CAST(:only_stale AS boolean) AND c.started_at >= :start AND c.started_at < :end
    UNION
    SELECT c.id, c.started_at, c.ended_at, c.tenant_id
    FROM unmatched u
    CROSS JOIN LATERAL (
        SELECT c.id, c.started_at, c.ended_at, c.tenant_id
        FROM calls c
        WHERE c.started_at >= greatest(u.b, CAST(:start AS timestamptz))
          AND c.started_at < least(u.b + interval '1 day', CAST(:end AS timestamptz))
          AND NOT EXISTS (SELECT 1 FROM call_metrics m WHERE m.call_id = c.id)
    ) c
    UNION
    SELECT c.id, c.started_at, c.ended_at, c.tenant_id
    FROM call_metrics m
    JOIN calls c ON c.id = m.call_id AND c.started_at = m.started_at
    WHERE CAST(:only_stale AS boolean) AND m.call_ended_at IS NULL
      AND m.started_at >= :start AND m.started_at < :end AND c.ended_at IS NOT NULL
    UNION
    SELECT c.id, c.started_at, c.ended_at, c.tenant_id
    FROM cca_call_ingest i
    JOIN call_metrics m ON m.call_id = i.call_id
    JOIN calls c ON c.id = i.call_id AND c.started_at = i.started_at
    WHERE CAST(:only_stale AS boolean) AND i.started_at >= :start AND i.started_at < :end
      AND i.ingested_at > coalesce(CAST(:ingested_after AS timestamptz), '-infinity')
      AND m.computed_at < i.ingested_at
)
SELECT id, started_at, ended_at, tenant_id FROM target ORDER BY started_at, id
