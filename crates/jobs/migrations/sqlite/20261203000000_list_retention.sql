-- The jobs list across tenants (admins) and by status, newest first; the
-- retention sweeper's scans of finished jobs and of idempotency keys by expiry.

CREATE INDEX jobs_created_idx ON jobs (created_at_ms DESC, id DESC);
CREATE INDEX jobs_status_created_idx ON jobs (status, created_at_ms DESC, id DESC);
CREATE INDEX jobs_finished_idx ON jobs (updated_at_ms)
    WHERE status IN ('completed', 'failed', 'cancelled');
CREATE INDEX jobs_idempotency_expiry_idx ON jobs (idempotency_expires_at_ms)
    WHERE idempotency_key IS NOT NULL;
