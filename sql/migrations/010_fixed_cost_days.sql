-- 010: the daily allocation of fixed monthly costs (a self-hosted STT's GPU, say). A fixed monthly
-- cost is spread pro rata over the month's days (monthly cost / days in the month) and each day's
-- share is divided among that day's calls on the provider. While the day runs the share accrues
-- with the elapsed part of the day; once the day is over (plus a grace period for late deliveries)
-- the row is final and never rewritten: a call of a past day keeps its price (ccanalytics.cost).
CREATE TABLE cca_fixed_cost_days (
    provider        varchar(100) NOT NULL,
    day             date NOT NULL,            -- a business (Europe/Kyiv) day
    daily_share_usd double precision NOT NULL CHECK (daily_share_usd >= 0),
    calls           integer NOT NULL CHECK (calls >= 0),
    per_call_usd    double precision CHECK (per_call_usd >= 0),   -- NULL: no call that day
    final           boolean NOT NULL DEFAULT false,
    computed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, day)
);
