-- Webhook deliveries seen, so a replay of the same delivery id is refused within the
-- window (NR_WEBHOOK_REPLAY_WINDOW_S). Rows older than the window are removed as new
-- deliveries arrive. One module owns this table: services/gateway/src/routes/webhook.rs.
CREATE TABLE noderouter_core.webhook_deliveries (
    app_name     TEXT NOT NULL,
    delivery_id  TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (app_name, delivery_id)
);
CREATE INDEX webhook_deliveries_age ON noderouter_core.webhook_deliveries (received_at);

-- Files an app returned for download (`noderouter.download(...)`): the bytes live in the
-- object store under `files/<app>/<id>`; `token` (random, 256 bits) is the link
-- `/files/<token>`, served until `expires_at` (410 after). Expired rows and their
-- objects are removed by the gateways' scheduler pass. One module owns this table:
-- services/gateway/src/routes/download.rs.
CREATE TABLE noderouter_core.app_files (
    token         TEXT PRIMARY KEY,
    app_name      TEXT NOT NULL,
    name          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    object_key    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX app_files_expiry ON noderouter_core.app_files (expires_at);
