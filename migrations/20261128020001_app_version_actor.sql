-- Who deployed each version: the user or API token named by the app.updated event that
-- first made the bundle current. Events published before deploys recorded it leave
-- both columns null.
ALTER TABLE noderouter_core.app_versions
    ADD COLUMN IF NOT EXISTS deployed_by    TEXT,
    ADD COLUMN IF NOT EXISTS deployed_by_id TEXT;
