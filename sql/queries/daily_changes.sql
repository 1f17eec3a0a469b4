-- What changed since :since that daily_stats must follow: per local day (time zone :tz), the newest
-- time a call of that day was ingested (or re-delivered), scored, had its metrics derived, or was
-- rewritten by a batch (re-priced: call_changes). Read through the indexes on calls.ingested_at,
-- call_scores.created_at, call_metrics.computed_at and call_changes.changed_at, so the cost follows the
-- changes, not the size of the table.
SELECT (started_at AT TIME ZONE :tz)::date AS d, max(stamp) AS changed_at
FROM (
    SELECT started_at, ingested_at AS stamp FROM calls WHERE ingested_at > :since
    UNION ALL
    SELECT started_at, created_at FROM call_scores WHERE created_at > :since
    UNION ALL
    SELECT started_at, computed_at FROM call_metrics WHERE computed_at > :since
    UNION ALL
    SELECT started_at, changed_at FROM call_changes WHERE changed_at > :since
) x
WHERE started_at >= :start AND started_at < :end
GROUP BY 1
