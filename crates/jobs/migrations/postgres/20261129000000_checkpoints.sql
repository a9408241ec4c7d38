-- Checkpoints: every job keeps its state after the last finished stage and the
-- stage to run next, so a restart or the reaper can put it back in the pipeline.
-- Failures keep the API's error vocabulary (code, field) beside the message.

ALTER TABLE jobs ADD COLUMN state jsonb;
ALTER TABLE jobs ADD COLUMN resume_stage text;
ALTER TABLE jobs ADD COLUMN error_code text;
ALTER TABLE jobs ADD COLUMN error_field text;
-- A completed job's result was its final state.
UPDATE jobs SET state = result WHERE result IS NOT NULL;
-- Unfinished jobs of the old schema cannot be resumed: say so.
UPDATE jobs SET status = 'failed', error_code = 'stage_failed',
    error = 'interrupted by an upgrade before it finished; submit it again'
    WHERE status IN ('queued', 'running');
ALTER TABLE jobs DROP COLUMN result;

-- The restart and reaper scan: unfinished jobs by last progress.
CREATE INDEX jobs_unfinished_idx ON jobs (updated_at_ms) WHERE status IN ('queued', 'running');

-- States live on the job row; events keep who sent them and the failure's code.
ALTER TABLE job_events DROP COLUMN result;
ALTER TABLE job_events DROP COLUMN times;
ALTER TABLE job_events ADD COLUMN error_code text;
ALTER TABLE job_events ADD COLUMN error_field text;
ALTER TABLE job_events ADD COLUMN worker text NOT NULL DEFAULT '';
