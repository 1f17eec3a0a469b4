-- Per local day (time zone :tz) of :days: unique callers, repeat calls and first-contact resolution,
-- from one window pass over each customer's calls (from 7 days before :start to 7 days after :end).
--
-- Repeat call: the same customer called within the 7 days before. First-contact resolution: the bot
-- resolved the call and the customer did not call again within 7 days. (Calls with a hidden number
-- count as resolved when not transferred: daily_calls.sql adds them.)
SELECT d,
       count(*) FILTER (WHERE prev_at IS NULL OR (prev_at AT TIME ZONE :tz)::date <> d)      AS unique_callers,
       count(*) FILTER (WHERE prev_at >= started_at - interval '7 days')                    AS repeat_calls_7d,
       count(*) FILTER (WHERE NOT transferred_to_operator
                          AND (next_at IS NULL OR next_at > started_at + interval '7 days')) AS fcr_known
FROM (SELECT n.*, (n.started_at AT TIME ZONE :tz)::date AS d
      FROM cca_customer_neighbours(:start, :end) n) x
WHERE started_at >= :start AND started_at < :end AND d = ANY(CAST(:days AS date[]))
GROUP BY d
