-- Job store. Runs inside the configured schema (search_path), so several
-- schemas (environments, tests) live side by side in one database.

-- One row per job: created by the gateway, progressed by the status service.
CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    -- Client-supplied; unique so concurrent duplicate submissions yield one job.
    idempotency_key  text UNIQUE,
    kind             text NOT NULL,
    status           text NOT NULL
        CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    current_stage    text,
    priority         smallint NOT NULL,
    request          jsonb NOT NULL,
    result           jsonb,
    error            text,
    -- ProcessingTimes as JSON (queue_wait, per-stage, saving, total seconds).
    times            jsonb NOT NULL,
    created_at_ms    bigint NOT NULL,
    updated_at_ms    bigint NOT NULL
);

-- counts() and the running/failed figures of stage_stats().
CREATE INDEX jobs_status_stage_idx ON jobs (status, current_stage);

-- Every distinct event applied to a job, in arrival order (seq), for replay.
CREATE TABLE job_events (
    seq      bigserial PRIMARY KEY,
    job_id   uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind     text NOT NULL,
    stage    text,
    attempt  bigint NOT NULL,
    seconds  double precision NOT NULL,
    at_ms    bigint NOT NULL,
    error    text,
    result   jsonb,
    times    jsonb
);

-- Events are delivered at least once: this identity makes a redelivery a no-op.
-- COALESCE so job-level events (no stage) are deduplicated too.
CREATE UNIQUE INDEX job_events_identity_idx
    ON job_events (job_id, kind, COALESCE(stage, ''), attempt);

-- Latest duration of each finished stage of each job, for percentiles.
CREATE TABLE stage_timings (
    job_id       uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    stage        text NOT NULL,
    seconds      double precision NOT NULL,
    finished_at  timestamptz NOT NULL,
    PRIMARY KEY (job_id, stage)
);

-- stage_stats() reads one stage's finishes within a recent window.
CREATE INDEX stage_timings_window_idx ON stage_timings (stage, finished_at);
