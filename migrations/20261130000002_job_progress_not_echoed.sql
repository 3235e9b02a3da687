-- The runner publishes the progress it writes itself (the SDK's frames carry a message
-- the row has no room for). Its own writes were announced on the channel too, and the
-- echo, heard first, made the runner drop the SDK's event with its message as a repeat
-- of a value already sent. The runner now marks its writes with a transaction-local
-- setting, and only writes without it (the author guide's direct UPDATE) are announced.
-- An app that sets the mark in its own session only silences its own progress.
CREATE OR REPLACE FUNCTION noderouter_core.notify_job_progress() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.status = 'running' AND NEW.progress IS DISTINCT FROM OLD.progress
       AND coalesce(current_setting('noderouter.progress_published', true), '') <> 'on' THEN
        PERFORM pg_notify(
            (SELECT channel FROM noderouter_core.job_progress_channel),
            NEW.id::text || ' ' || NEW.progress::text
        );
    END IF;
    RETURN NEW;
END;
$$;
REVOKE ALL ON FUNCTION noderouter_core.notify_job_progress() FROM PUBLIC;
