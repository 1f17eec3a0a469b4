-- Calls per local day (:tz) and STT provider in [:start, :end) — whole business days, as a pricing
-- run always covers. A fixed monthly cost (a self-hosted STT) is allocated per day and divided among
-- that day's calls on the provider (ccanalytics.fixedcost).
SELECT (x.started_at AT TIME ZONE :tz)::date AS d,
       coalesce(x.usage ->> 'stt_provider', :stt_default) AS provider,
       count(*) AS n
FROM cca_calls x
WHERE x.started_at >= :start AND x.started_at < :end
GROUP BY 1, 2
