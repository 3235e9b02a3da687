-- The platform's own schema. Apps keep their tables in the default schema, prefixed
-- with their slug, as the author guide says.
CREATE SCHEMA IF NOT EXISTS noderouter_core;

-- Keeps updated_at current on every UPDATE.
CREATE OR REPLACE FUNCTION noderouter_core.touch_updated_at() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := NOW();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- How far each projection has applied its stream: a replay skips what is at or below.
CREATE TABLE noderouter_core.projection_offsets (
    projection  TEXT PRIMARY KEY,
    stream_seq  BIGINT NOT NULL DEFAULT 0,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Current state of every app (projection of app.updated events).
CREATE TABLE noderouter_core.apps (
    app_name          TEXT PRIMARY KEY,
    app_key           TEXT NOT NULL UNIQUE,         -- lower(app_name): names differing only in case conflict
    display_name      TEXT,
    description       TEXT,
    current_version   TEXT NOT NULL,
    current_sha256    TEXT NOT NULL,
    bundle_key        TEXT NOT NULL,
    manifest          JSONB NOT NULL,
    rev               BIGINT NOT NULL,              -- stream sequence of the event that made it current
    deleted           BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Every version ever deployed, kept for rollback.
CREATE TABLE noderouter_core.app_versions (
    app_name     TEXT NOT NULL,
    version      TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    bundle_key   TEXT NOT NULL,
    manifest     JSONB NOT NULL,
    first_rev    BIGINT NOT NULL,
    last_rev     BIGINT NOT NULL,
    deployed_at  TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (app_name, sha256)
);
CREATE INDEX app_versions_by_app ON noderouter_core.app_versions (app_name, last_rev DESC);

-- The async job record (authoritative). The author guide's columns first, then what the
-- queue needs: attempts fence completion, the lease lets another runner take over.
CREATE TABLE noderouter_core.job_queue (
    id               UUID PRIMARY KEY,
    app_name         TEXT NOT NULL,
    payload          JSONB NOT NULL DEFAULT '{}'::jsonb,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    progress         INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    result           JSONB,
    error_message    TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 3,
    lease_until      TIMESTAMPTZ,
    node             TEXT,
    submitted_by     TEXT,
    idempotency_key  TEXT,
    app_rev          BIGINT
);
CREATE INDEX job_queue_by_status ON noderouter_core.job_queue (status, lease_until);
CREATE INDEX job_queue_by_submitter ON noderouter_core.job_queue (submitted_by, created_at DESC);
CREATE UNIQUE INDEX job_queue_idempotency ON noderouter_core.job_queue (submitted_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TRIGGER job_queue_touch BEFORE UPDATE ON noderouter_core.job_queue
    FOR EACH ROW EXECUTE FUNCTION noderouter_core.touch_updated_at();
