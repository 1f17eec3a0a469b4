-- Per local day (time zone :tz) of :days, over every tenant (tenant_id NULL) and per tenant that had
-- calls that day: unique callers, repeat calls and first-contact resolution, from one window pass over
-- each customer's calls (from 7 days before :start to 7 days after :end).
--
-- A customer is one tenant's (customers are unique per tenant and phone): a number that called two
-- tenants is two customers, and its calls to one tenant are not repeats of its calls to the other. So
-- a tenant's figures count its own customers' calls (by the call's tenant), and the counts over every
-- tenant are taken over the same rows in the same pass, not added up from the tenants'. Repeat call:
-- the same customer called within the 7 days before. First-contact resolution: the bot resolved the
-- call and the customer did not call again within 7 days. (Calls with a hidden number count as
-- resolved when not transferred: daily_calls.sql adds them.) The window is cca_customer_neighbours
-- (migration 002) written out, with the previous call's local day carried along so that each call's
-- day is computed once.
SELECT d, tenant_id,
       count(*) FILTER (WHERE prev_d IS DISTINCT FROM d)                                     AS unique_callers,
       count(*) FILTER (WHERE prev_at >= started_at - make_interval(days => :fcr_days))                    AS repeat_calls_7d,
       count(*) FILTER (WHERE NOT transferred_to_operator
                          AND (next_at IS NULL OR next_at > started_at + make_interval(days => :fcr_days))) AS fcr_known
FROM (
    SELECT started_at, transferred_to_operator, d, tenant_id,
           lag(started_at) OVER w  AS prev_at,
           lag(d) OVER w           AS prev_d,
           lead(started_at) OVER w AS next_at
    -- an unknown transfer flag (the processor's column is nullable) reads as not transferred, as in cca_calls
    FROM (SELECT id, customer_id, started_at, coalesce(transferred_to_operator, false) AS transferred_to_operator,
                 (started_at AT TIME ZONE :tz)::date AS d, tenant_id
          FROM (
              -- a long range: one pass over the window
              SELECT id, customer_id, started_at, transferred_to_operator, tenant_id
              FROM calls
              WHERE NOT CAST(:narrow AS boolean) AND customer_id IS NOT NULL
                AND started_at >= CAST(:start AS timestamptz) - make_interval(days => :fcr_days)
                AND started_at < CAST(:end AS timestamptz) + make_interval(days => :fcr_days)
              UNION ALL
              -- with :narrow (a few days, as the near-real-time job recomputes), only the customers who
              -- called in [:start, :end) (the others' windows give no row of these days), each one's calls
              -- looked up through the index on (customer_id, started_at): the rows read grow with the days'
              -- own calls, not with the table (OFFSET 0 keeps the lookup per customer: joined, the planner
              -- may prefer one pass over every partition the window touches)
              SELECT o.id, o.customer_id, o.started_at, o.transferred_to_operator, o.tenant_id
              FROM (SELECT DISTINCT customer_id FROM calls
                    WHERE CAST(:narrow AS boolean) AND customer_id IS NOT NULL
                      AND started_at >= :start AND started_at < :end) k
              CROSS JOIN LATERAL (
                  SELECT id, customer_id, started_at, transferred_to_operator, tenant_id
                  FROM calls
                  WHERE customer_id = k.customer_id
                    AND started_at >= CAST(:start AS timestamptz) - make_interval(days => :fcr_days)
                    AND started_at < CAST(:end AS timestamptz) + make_interval(days => :fcr_days)
                  OFFSET 0) o
          ) u) c
    WINDOW w AS (PARTITION BY customer_id ORDER BY started_at, id)
) x
WHERE started_at >= :start AND started_at < :end AND d = ANY(CAST(:days AS date[]))
GROUP BY GROUPING SETS ((d), (d, tenant_id))
HAVING GROUPING(tenant_id) = 1 OR tenant_id IS NOT NULL
