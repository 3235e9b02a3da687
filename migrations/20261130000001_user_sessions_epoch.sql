-- Disabling a user ends the sessions issued before: the registry counts the user's
-- disablings here, and the gateway binds a session to the count as it binds it to the
-- password (a session's stamp covers both). Enabling the user again does not bring the
-- old sessions back. Zero keeps the stamps of sessions issued before this column.
ALTER TABLE noderouter_core.users
    ADD COLUMN sessions_epoch BIGINT NOT NULL DEFAULT 0;
