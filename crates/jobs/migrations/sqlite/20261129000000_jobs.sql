-- Job store for `atelier serve`: the same tables as PostgreSQL's (after its
-- checkpoint migration), in SQLite types. JSON is stored as text.

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    idempotency_key  TEXT UNIQUE,
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
