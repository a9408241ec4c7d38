-- Webhooks: a job's endpoint (callbackUrl) and each delivery of its events,
-- with every attempt, so atelier serve resumes its deliveries after a restart.

CREATE TABLE webhooks (
    job_id    TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    url       TEXT NOT NULL,
    -- Whose signing secret: the API key's name (NULL: webhooks.secret).
    key_name  TEXT,
    -- JSON array of the event types wanted.
    events    TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
    -- msg_…, the webhook-id of every attempt.
    id                  TEXT PRIMARY KEY,
    job_id              TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    -- job.completed, job.stage_finished:analysis …: one delivery per event.
    topic               TEXT NOT NULL,
    event_type          TEXT NOT NULL,
    url                 TEXT NOT NULL,
    key_name            TEXT,
    -- The exact bytes every attempt sends.
    body                TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    -- JSON array of attempts.
    attempts            TEXT NOT NULL DEFAULT '[]',
    next_attempt_at_ms  INTEGER,
    created_at_ms       INTEGER NOT NULL,
    updated_at_ms       INTEGER NOT NULL,
    UNIQUE (job_id, topic)
);

-- What the sender looks for.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at_ms) WHERE status = 'pending';
