-- 011: which automatic checks ran for which business day, so a report can tell "checked, nothing
-- found" from "never checked" ("не проверялось"). One row per check and day: problem detection for
-- that day; alert evaluation during that day (the first and last evaluation and how many).
CREATE TABLE cca_check_runs (
    kind        varchar(40) NOT NULL,      -- problems | alerts
    day         date NOT NULL,             -- business (Europe/Kyiv) day
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    runs        integer NOT NULL DEFAULT 1 CHECK (runs >= 1),
    PRIMARY KEY (kind, day)
);
