-- Why a version was refused after deploy had published it: a runner could not load it
-- for its code, and deploy undid the change (app.updated's `undoes`). Null for every
-- version that loaded; cleared when a later change makes the bundle current again.
ALTER TABLE noderouter_core.app_versions
    ADD COLUMN IF NOT EXISTS refused TEXT;
