-- 017: users and API tokens limited to tenants. tenants holds the slugs of the call processor's tenants
-- (its tenants table) the user or token may read; NULL means every tenant. ccanalytics.auth checks the
-- slugs against the tenants table when it writes them; a slug whose tenant was deleted later stays
-- (it matches no call) until someone changes the list. An empty list is refused: NULL says "every
-- tenant", and a reader limited to nothing would be a disabled one.
ALTER TABLE users ADD COLUMN tenants text[]
    CONSTRAINT users_tenants_not_empty CHECK (tenants IS NULL OR cardinality(tenants) > 0);

ALTER TABLE api_tokens ADD COLUMN tenants text[]
    CONSTRAINT api_tokens_tenants_not_empty CHECK (tenants IS NULL OR cardinality(tenants) > 0);
