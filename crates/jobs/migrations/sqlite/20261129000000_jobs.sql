-- Job store for `atelier serve`: the same tables as PostgreSQL's (after its
-- checkpoint migration), in SQLite types. JSON is stored as text.

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    idempotency_key  TEXT,
    -- SHA-256 of the request body: the same key with another body is refused.
    request_hash     TEXT,
    idempotency_expires_at_ms INTEGER,
    admission        TEXT NOT NULL CHECK (admission IN ('pending', 'admitted', 'refused')),
    resumes          INTEGER NOT NULL DEFAULT 0,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    current_stage    TEXT,
    priority         INTEGER NOT NULL,
    request          TEXT NOT NULL,
    error            TEXT,
    error_code       TEXT,
    error_field      TEXT,
    times            TEXT NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    updated_at_ms    INTEGER NOT NULL,
    state            TEXT,
    resume_stage     TEXT
);

CREATE UNIQUE INDEX jobs_tenant_idempotency_idx ON jobs (tenant, idempotency_key);
CREATE INDEX jobs_tenant_created_idx ON jobs (tenant, created_at_ms DESC, id DESC);
CREATE INDEX jobs_status_stage_idx ON jobs (status, current_stage);
CREATE INDEX jobs_unfinished_idx ON jobs (updated_at_ms) WHERE status IN ('queued', 'running');

CREATE TABLE job_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id       TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    stage        TEXT,
    attempt      INTEGER NOT NULL,
    seconds      REAL NOT NULL,
    at_ms        INTEGER NOT NULL,
    error        TEXT,
    error_code   TEXT,
    error_field  TEXT,
    worker       TEXT NOT NULL DEFAULT ''
);

CREATE UNIQUE INDEX job_events_identity_idx
    ON job_events (job_id, kind, COALESCE(stage, ''), attempt);
CREATE INDEX job_events_job_idx ON job_events (job_id, seq);

CREATE TABLE stage_timings (
    job_id       TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    stage        TEXT NOT NULL,
    seconds      REAL NOT NULL,
    finished_ms  INTEGER NOT NULL,
    PRIMARY KEY (job_id, stage)
);

CREATE INDEX stage_timings_window_idx ON stage_timings (stage, finished_ms);

-- API keys: only the SHA-256 of each secret is kept.
CREATE TABLE api_keys (
    name             TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    key_hash         TEXT NOT NULL UNIQUE,
    key_prefix       TEXT NOT NULL,
    admin            INTEGER NOT NULL,
    rate_per_minute  INTEGER,
    max_in_flight    INTEGER,
    webhook_secret   TEXT,
    created_at_ms    INTEGER NOT NULL,
    revoked_at_ms    INTEGER
);

-- Shared rate limits: one GCRA theoretical arrival time per bucket.
CREATE TABLE rate_limits (
    bucket  TEXT PRIMARY KEY,
    tat_ms  INTEGER NOT NULL
);

-- Leases: one holder at a time for periodic chores (reaper, retention).
CREATE TABLE leases (
    name           TEXT PRIMARY KEY,
    holder         TEXT NOT NULL,
    expires_at_ms  INTEGER NOT NULL
);
