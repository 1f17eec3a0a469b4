-- The weekly summary's figures that metrics.summary does not carry, per Monday–Sunday week of the
-- business time zone :tz (``week``: its Monday), over the calls that started in [:start, :end) of the
-- tenants :tenants (slugs; NULL: every tenant): the scored calls and those scored below :low_quality
-- (definitions.LOW_QUALITY), and each priced cost component per priced call (as storyfacts reads a day's).
SELECT date_trunc('week', c.started_at AT TIME ZONE :tz)::date                      AS week,
       count(*)                                                                    AS calls,
       count(c.quality_score)                                                      AS scored,
       count(*) FILTER (WHERE c.quality_score < :low_quality)                      AS low_quality,
       avg((c.cost_breakdown->>'stt')::float8) FILTER (WHERE c.total_cost_usd IS NOT NULL)::float8       AS stt,
       avg((c.cost_breakdown->>'llm')::float8) FILTER (WHERE c.total_cost_usd IS NOT NULL)::float8       AS llm,
       avg((c.cost_breakdown->>'tts')::float8) FILTER (WHERE c.total_cost_usd IS NOT NULL)::float8       AS tts,
       avg((c.cost_breakdown->>'telephony')::float8) FILTER (WHERE c.total_cost_usd IS NOT NULL)::float8 AS telephony
FROM cca_calls c
WHERE c.started_at >= :start AND c.started_at < :end
  AND (CAST(:tenants AS text[]) IS NULL OR c.tenant = ANY(CAST(:tenants AS text[])))
GROUP BY 1
ORDER BY 1
