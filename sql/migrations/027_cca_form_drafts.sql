-- 027: a form posted after its session ended is kept for a short while (issue 19).
--
-- An analyst writes a long review comment, the session has ended meanwhile (12 h, a logout elsewhere,
-- a new password): the POST is redirected to the login page. The posted fields are kept here
-- (ccanalytics.formdrafts; never a password or the CSRF token), under the SHA-256 of a random key that
-- only the login redirect carries, for the user whose browser posted them. After logging in, that user
-- (and no other) gets the form back filled in. Rows live 30 minutes; each new draft prunes the expired
-- ones and keeps at most 10 per user.
CREATE TABLE cca_form_drafts (
    key_hash   char(64) PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    page       text NOT NULL,     -- where the form was (the page to come back to)
    action     text NOT NULL,     -- where it was posted
    fields     jsonb NOT NULL,    -- [[name, value], …] in the posted order
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX cca_form_drafts_user_idx ON cca_form_drafts (user_id, created_at DESC);
CREATE INDEX cca_form_drafts_expires_idx ON cca_form_drafts (expires_at);
