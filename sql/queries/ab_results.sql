-- Sufficient statistics per variant of an A/B test: the calls attributed to it (calls.ab_test_id)
-- since it started, minus the test's exclusions (:min_turns, :min_duration, :transferred_before).
-- Counts, sums and sums of squares only: the statistics run on these (ccanalytics.abtest).
WITH c AS (
    SELECT c.ab_variant AS variant, c.transferred_to_operator AS transferred, c.quality_score,
           c.duration_seconds::float8 AS duration, c.total_cost_usd AS cost, c.quality_details, m.response_ms,
           (m.turns IS NOT NULL AND m.turns < :min_turns)
             OR c.duration_seconds < :min_duration
             OR (c.transferred_to_operator AND c.duration_seconds < :transferred_before) AS excluded
    FROM cca_calls c
    LEFT JOIN call_metrics m ON m.call_id = c.id
    WHERE c.ab_test_id = :test_id AND c.started_at >= :start AND c.started_at < :end
      AND c.ab_variant IS NOT NULL
)
SELECT variant,
       count(*) FILTER (WHERE excluded)                                     AS excluded,
       count(*) FILTER (WHERE NOT excluded)                                 AS n,
       count(*) FILTER (WHERE NOT excluded AND NOT transferred)             AS resolved,
       count(quality_score) FILTER (WHERE NOT excluded)                     AS q_n,
       coalesce(sum(quality_score) FILTER (WHERE NOT excluded), 0)          AS q_sum,
       coalesce(sum(quality_score ^ 2) FILTER (WHERE NOT excluded), 0)      AS q_sq,
       count(duration) FILTER (WHERE NOT excluded)                          AS d_n,
       coalesce(sum(duration) FILTER (WHERE NOT excluded), 0)               AS d_sum,
       coalesce(sum(duration ^ 2) FILTER (WHERE NOT excluded), 0)           AS d_sq,
       count(cost) FILTER (WHERE NOT excluded)                              AS c_n,
       coalesce(sum(cost) FILTER (WHERE NOT excluded), 0)                   AS c_sum,
       coalesce(sum(cost ^ 2) FILTER (WHERE NOT excluded), 0)               AS c_sq,
       coalesce(sum(cost) FILTER (WHERE NOT excluded AND NOT transferred), 0) AS c_sum_resolved,
       (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY x)
          FROM c c2, unnest(c2.response_ms) x WHERE c2.variant = c.variant AND NOT c2.excluded) AS response_p95_ms,
       (SELECT coalesce(jsonb_object_agg(k, jsonb_build_array(n, s, sq)), '{}') FROM (
            SELECT e.key AS k, count(*) AS n, sum((e.value ->> 'score')::float8) AS s,
                   sum(((e.value ->> 'score')::float8) ^ 2) AS sq
            FROM c c3, jsonb_each(c3.quality_details -> 'criteria') e
            WHERE c3.variant = c.variant AND NOT c3.excluded AND jsonb_typeof(e.value -> 'score') = 'number'
              AND coalesce(e.value ->> 'applicable', 'true') <> 'false'
            GROUP BY 1) cr)                                                 AS criteria
FROM c
GROUP BY variant
ORDER BY variant
