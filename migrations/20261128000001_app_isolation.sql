-- Each app runs as its own OS user and connects to Postgres as its own role, with its
-- own schema. This table is the single record of who an app is, so every runner and
-- deploy's import check agree (nr_infra::appid owns every statement on it).
CREATE TABLE noderouter_core.app_identities (
    app_name     TEXT PRIMARY KEY,
    uid          BIGINT NOT NULL UNIQUE,   -- OS uid and gid of the app's processes
    db_role      TEXT NOT NULL UNIQUE,     -- LOGIN role; cluster-wide, so made unique
    db_schema    TEXT NOT NULL UNIQUE,     -- owned by db_role, its search_path
    db_password  TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Every app role is a member of this group; the grants below go to the group, so an app
-- role carries nothing of its own in noderouter_core. Roles are cluster-wide: several
-- databases (tests) may race to create it.
DO $$
BEGIN
    CREATE ROLE noderouter_apps NOLOGIN;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

-- The app of the connected session: the app whose login role opened it. SECURITY DEFINER
-- so apps need no access to app_identities (which holds every app's password).
CREATE FUNCTION noderouter_core.session_app() RETURNS TEXT
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT app_name FROM noderouter_core.app_identities WHERE db_role = session_user
$$;
REVOKE ALL ON FUNCTION noderouter_core.session_app() FROM PUBLIC;

-- The author guide's one door into noderouter_core:
--   UPDATE noderouter_core.job_queue SET progress = %s, updated_at = NOW() WHERE id = %s
-- Column grants allow exactly that statement; row-level security limits it to the
-- app's own jobs. The platform connects as the tables' owner or a superuser, which
-- row-level security does not restrict.
GRANT USAGE ON SCHEMA noderouter_core TO noderouter_apps;
GRANT EXECUTE ON FUNCTION noderouter_core.session_app() TO noderouter_apps;
GRANT SELECT (id, app_name) ON noderouter_core.job_queue TO noderouter_apps;
GRANT UPDATE (progress, updated_at) ON noderouter_core.job_queue TO noderouter_apps;

ALTER TABLE noderouter_core.job_queue ENABLE ROW LEVEL SECURITY;
CREATE POLICY app_own_jobs ON noderouter_core.job_queue
    FOR ALL TO noderouter_apps
    USING (app_name = noderouter_core.session_app())
    WITH CHECK (app_name = noderouter_core.session_app());
-- Roles that are not apps (a platform role that is neither owner nor superuser) see
-- every row, as before.
CREATE POLICY platform_all_jobs ON noderouter_core.job_queue
    FOR ALL TO PUBLIC
    USING (NOT pg_has_role(current_user, 'noderouter_apps', 'MEMBER'))
    WITH CHECK (NOT pg_has_role(current_user, 'noderouter_apps', 'MEMBER'));

-- Apps keep their tables in their own schema; nobody creates objects in `public`
-- (the default since PostgreSQL 15, stated here for older servers).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
