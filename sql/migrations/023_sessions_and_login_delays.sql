-- 023: sessions that the server can end, and login throttling that cannot lock a real user out.
--
-- users.session_epoch is part of every session's stamp (with the password hash): logging out, a new
-- password and disabling the user add one to it, so every session of that user ends at once, a cookie
-- copied before included. The stamp is checked on every request, with the user row the guard loads.
ALTER TABLE users ADD COLUMN session_epoch bigint NOT NULL DEFAULT 0;

-- Login throttling (ccanalytics.auth.login) asks "did this client ever log in to this account?":
-- successful attempts are kept for 30 days (failures for one day) and found through this index.
CREATE INDEX login_attempts_known_client_idx ON login_attempts (username, ip, at) WHERE success;
