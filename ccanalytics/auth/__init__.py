"""Who may do what: users, API tokens, login throttling and the audit log, the administrator's
view of accounts, and form drafts kept across an ended session."""
