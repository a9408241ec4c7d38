-- Tenants, API keys and shared rate limits; idempotency keys per tenant, with
-- a body fingerprint and an expiry; admission of a job into the pipeline.

ALTER TABLE jobs ADD COLUMN tenant text NOT NULL DEFAULT 'anonymous';
ALTER TABLE jobs ALTER COLUMN tenant DROP DEFAULT;
ALTER TABLE jobs ADD COLUMN request_hash text;
ALTER TABLE jobs ADD COLUMN idempotency_expires_at_ms bigint;
ALTER TABLE jobs ADD COLUMN admission text NOT NULL DEFAULT 'admitted'
    CHECK (admission IN ('pending', 'admitted', 'refused'));
ALTER TABLE jobs ALTER COLUMN admission DROP DEFAULT;
ALTER TABLE jobs ADD COLUMN resumes integer NOT NULL DEFAULT 0;

-- Idempotency keys belong to a tenant.
ALTER TABLE jobs DROP CONSTRAINT jobs_idempotency_key_key;
CREATE UNIQUE INDEX jobs_tenant_idempotency_idx ON jobs (tenant, idempotency_key);
-- A tenant's jobs, newest first.
CREATE INDEX jobs_tenant_created_idx ON jobs (tenant, created_at_ms DESC, id DESC);

-- API keys: only the SHA-256 of each secret is kept.
CREATE TABLE api_keys (
    name             text PRIMARY KEY,
    tenant           text NOT NULL,
    key_hash         text NOT NULL UNIQUE,
    key_prefix       text NOT NULL,
    admin            boolean NOT NULL,
    rate_per_minute  integer,
    max_in_flight    integer,
    webhook_secret   text,
    created_at_ms    bigint NOT NULL,
    revoked_at_ms    bigint
);

-- Shared rate limits: one GCRA theoretical arrival time per bucket.
CREATE TABLE rate_limits (
    bucket  text PRIMARY KEY,
    tat_ms  bigint NOT NULL
);

-- Leases: one holder at a time cluster-wide for periodic chores (the reaper,
-- the retention sweeper); a holder that dies loses its lease when it expires.
CREATE TABLE leases (
    name           text PRIMARY KEY,
    holder         text NOT NULL,
    expires_at_ms  bigint NOT NULL
);
