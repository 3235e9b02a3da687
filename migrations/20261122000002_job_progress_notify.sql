-- Progress written straight to the row (the author guide's
-- `UPDATE noderouter_core.job_queue SET progress = ...`) is announced on a channel, so the
-- runner holding the job publishes it on job.progress.<app>.<job_id>.
CREATE OR REPLACE FUNCTION noderouter_core.notify_job_progress() RETURNS trigger AS $$
BEGIN
    IF NEW.status = 'running' AND NEW.progress IS DISTINCT FROM OLD.progress THEN
        PERFORM pg_notify('nr_job_progress', NEW.id::text || ' ' || NEW.progress::text);
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER job_queue_progress_notify AFTER UPDATE OF progress ON noderouter_core.job_queue
    FOR EACH ROW EXECUTE FUNCTION noderouter_core.notify_job_progress();
