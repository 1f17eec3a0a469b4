-- Calls per month (local time :tz) and STT provider over the whole months around [:start, :end), and
-- how many of them started in [:start, :end). A self-hosted STT's fixed monthly cost is shared by
-- that month's calls on it (call_costs.sql); the calls in the period are what a pricing run covers.
SELECT date_trunc('month', x.started_at AT TIME ZONE :tz)::date AS m,
       coalesce(x.usage ->> 'stt_provider', :stt_default) AS provider,
       count(*) AS n,
       count(*) FILTER (WHERE x.started_at >= :start AND x.started_at < :end) AS in_period
FROM calls x
WHERE x.started_at >= date_trunc('month', CAST(:start AS timestamptz) AT TIME ZONE :tz) AT TIME ZONE :tz
  AND x.started_at < (date_trunc('month', CAST(:end AS timestamptz) AT TIME ZONE :tz) + interval '1 month') AT TIME ZONE :tz
GROUP BY 1, 2
