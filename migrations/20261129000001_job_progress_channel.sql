-- Progress written straight to a job's row is announced on a channel whose name only the
-- platform knows. Apps can LISTEN and NOTIFY on any channel name (Postgres has no
-- privileges on channels): on a fixed name they saw every app's running job ids and could
-- announce progress for another app's job. The name is drawn once per database and kept
-- in a table apps cannot read; the trigger reads it as the table's owner.
CREATE TABLE noderouter_core.job_progress_channel (
    one      BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    channel  TEXT NOT NULL
);
INSERT INTO noderouter_core.job_progress_channel (channel)
    VALUES ('nr_job_progress_' || replace(gen_random_uuid()::text, '-', ''));
REVOKE ALL ON noderouter_core.job_progress_channel FROM PUBLIC;

CREATE OR REPLACE FUNCTION noderouter_core.notify_job_progress() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.status = 'running' AND NEW.progress IS DISTINCT FROM OLD.progress THEN
        PERFORM pg_notify(
            (SELECT channel FROM noderouter_core.job_progress_channel),
            NEW.id::text || ' ' || NEW.progress::text
        );
    END IF;
    RETURN NEW;
END;
$$;
REVOKE ALL ON FUNCTION noderouter_core.notify_job_progress() FROM PUBLIC;
