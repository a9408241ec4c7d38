-- Webhooks: a job's endpoint (callbackUrl) and each delivery of its events,
-- with every attempt, so any status service replica sends what is due.

CREATE TABLE webhooks (
    job_id    uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    url       text NOT NULL,
    -- Whose signing secret: the API key's name (NULL: webhooks.secret).
    key_name  text,
    -- JSON array of the event types wanted.
    events    text NOT NULL
);

CREATE TABLE webhook_deliveries (
    -- msg_…, the webhook-id of every attempt.
    id                  text PRIMARY KEY,
    job_id              uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    -- job.completed, job.stage_finished:analysis …: one delivery per event.
    topic               text NOT NULL,
    event_type          text NOT NULL,
    url                 text NOT NULL,
    key_name            text,
    -- The exact bytes every attempt sends.
    body                text NOT NULL,
    status              text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    -- JSON array of attempts.
    attempts            text NOT NULL DEFAULT '[]',
    next_attempt_at_ms  bigint,
    created_at_ms       bigint NOT NULL,
    updated_at_ms       bigint NOT NULL,
    UNIQUE (job_id, topic)
);

-- What the sender looks for.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at_ms) WHERE status = 'pending';
