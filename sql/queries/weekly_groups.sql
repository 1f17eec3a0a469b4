-- Per Monday–Sunday week of :tz (``week``: its Monday) and head scenario, and per week and prompt
-- version, of the calls that started in [:start, :end) of the tenants :tenants (NULL: every tenant):
-- calls, transfers and mean quality — the breakdowns the story of a day reads per day
-- (ccanalytics.storyfacts), here per week. ``what`` says which breakdown a row is of.
WITH c AS (
    SELECT date_trunc('week', c.started_at AT TIME ZONE :tz)::date AS week,
           coalesce(split_part(c.scenario, ' + ', 1), 'unknown')   AS scenario,
           coalesce(c.prompt_version, '—')                          AS version,
           c.transferred_to_operator                                AS transferred,
           c.quality_score
    FROM cca_calls c
    WHERE c.started_at >= :start AND c.started_at < :end
      AND (CAST(:tenants AS text[]) IS NULL OR c.tenant = ANY(CAST(:tenants AS text[])))
)
SELECT week,
       CASE WHEN GROUPING(scenario) = 0 THEN 'scenario' ELSE 'prompt_version' END AS what,
       CASE WHEN GROUPING(scenario) = 0 THEN scenario ELSE version END             AS key,
       count(*)                                                                    AS calls,
       count(*) FILTER (WHERE transferred)                                         AS transferred,
       avg(quality_score)::float8                                                  AS quality
FROM c
GROUP BY GROUPING SETS ((week, scenario), (week, version))
