-- The request id (`X-Request-Id`) of the submit that queued the job: the runner puts it
-- on every line of the job's logs (stored, streamed and in the platform's log). NULL for
-- jobs without a request (schedules); their lines carry the job id instead.
ALTER TABLE noderouter_core.job_queue ADD COLUMN request_id TEXT;
