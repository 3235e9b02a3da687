-- Manifest schedules: one row per (app, schedule) with the operator's pause and how far
-- the ticks have been decided, and one row per decided tick. The tick's primary key is
-- what makes every tick run once however many schedulers poll: the scheduler that
-- inserts the row submits the job, the others' inserts do nothing.
-- One module owns every statement on these tables: services/gateway/src/schedules/.
CREATE TABLE noderouter_core.schedules (
    app_name       TEXT NOT NULL,
    name           TEXT NOT NULL,
    paused         BOOLEAN NOT NULL DEFAULT FALSE,
    paused_by      TEXT,
    paused_at      TIMESTAMPTZ,
    -- Every tick up to this instant has a row in schedule_ticks (or none was due).
    checked_until  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app_name, name)
);

CREATE TABLE noderouter_core.schedule_ticks (
    app_name    TEXT NOT NULL,
    schedule    TEXT NOT NULL,
    tick        TIMESTAMPTZ NOT NULL,
    status      TEXT NOT NULL
                CHECK (status IN ('submitted', 'queued', 'skipped', 'missed', 'paused', 'failed')),
    -- Why a tick did not run (or ran late); NULL for a run on time.
    reason      TEXT,
    -- The job of a submitted tick, chosen before it is inserted so a scheduler that
    -- dies between the two leaves a tick another one can finish.
    job_id      UUID,
    node        TEXT NOT NULL,
    decided_at  TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (app_name, schedule, tick)
);
CREATE INDEX schedule_ticks_queued ON noderouter_core.schedule_ticks (app_name, schedule, tick)
    WHERE status = 'queued';

-- The overlap check: is a run of this schedule still pending or running?
CREATE INDEX schedule_ticks_submitted ON noderouter_core.schedule_ticks (app_name, schedule, decided_at)
    WHERE status = 'submitted';
