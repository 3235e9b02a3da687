-- Runs of a job the platform could not start (its bundle unreadable, a worker that
-- could not be started or open the app's database connection) and runs handed back by
-- a draining runner: each also raised max_attempts by one, so attempt - uncounted is
-- the number of runs that count against the job's attempts.
ALTER TABLE noderouter_core.job_queue ADD COLUMN IF NOT EXISTS uncounted INTEGER NOT NULL DEFAULT 0;
