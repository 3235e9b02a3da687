-- Jobs people can operate: back-off between attempts, logs kept with the job, and
-- pruning of finished rows by age.

-- A pending job is not run before this time (a retry's back-off).
ALTER TABLE noderouter_core.job_queue ADD COLUMN not_before TIMESTAMPTZ;
-- stdout, stderr and `logging` output of the job's last attempt, size-capped.
ALTER TABLE noderouter_core.job_queue ADD COLUMN logs TEXT;

-- Retention pruning walks finished rows oldest first.
CREATE INDEX job_queue_finished ON noderouter_core.job_queue (updated_at)
    WHERE status IN ('completed', 'failed', 'cancelled');
-- Bulk re-queue of an app's dead letters.
CREATE INDEX job_queue_by_app_status ON noderouter_core.job_queue (app_name, status);

INSERT INTO noderouter_core.permissions (name, description, source) VALUES
    ('jobs:requeue_all', 'Re-queue any user''s failed async job', 'platform')
ON CONFLICT (name) DO NOTHING;
