-- 025: the journal's sorts by quality and cost read indexes of ccanalytics's own tables, and the
-- transcript search matches the whole call (issue 19).
--
-- A journal page sorted by quality (or cost) merges two ordered streams (ccanalytics.journal): the
-- calls ccanalytics scored (priced), read in key order from these indexes, and the calls it has not,
-- found by a merge of the calls' (started_at, id) index with the (started_at, call_id) indexes below
-- and sorted (few: the calls not scored or priced yet). Before, every call of the window was read
-- through the cca_calls view and sorted (90 days, quality > 0.95, best first: 603 ms at 1M calls).
CREATE INDEX cca_call_scores_journal_idx ON call_scores (overall_score, started_at, call_id) WHERE is_current;
CREATE INDEX cca_call_scores_window_idx ON call_scores (started_at, call_id) WHERE is_current;
CREATE INDEX cca_call_costs_journal_idx ON cca_call_costs ((coalesce(total_usd, -1)), started_at, call_id);
CREATE INDEX cca_call_costs_window_idx ON cca_call_costs (started_at, call_id);

-- A word prefix (``шиномонт*``): the prefix normalised as a document is (cca_search_normalize) and
-- stemmed by the same configuration, matching every lexeme that starts with it. The prefix is one
-- quoted lexeme for to_tsquery, so no character of it is read as an operator.
CREATE FUNCTION cca_prefix_query(p text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN to_tsquery('cca_text'::regconfig, quote_literal(cca_search_normalize(p)) || ':*');

-- Whether a call matches a search over the whole call: each of ``terms`` in some turn of the call (a
-- phrase stays inside one turn), none of ``excluded`` in any. The call's turns are read in the
-- partitions its start bounds (turns are stamped within an hour before and 7 hours after it), each
-- turn's vector computed once.
CREATE FUNCTION cca_call_matches(call uuid, started timestamptz, terms tsquery[], excluded tsquery[])
    RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH v AS MATERIALIZED (
        SELECT cca_search_vector(t.content) AS v FROM call_turns t
        WHERE t.call_id = call AND t.created_at >= started - interval '1 hour'
          AND t.created_at < started + interval '7 hours')
    SELECT NOT EXISTS (SELECT 1 FROM unnest(terms) q WHERE NOT EXISTS (SELECT 1 FROM v WHERE v.v @@ q))
       AND NOT EXISTS (SELECT 1 FROM v, unnest(excluded) q WHERE v.v @@ q)
$$;
