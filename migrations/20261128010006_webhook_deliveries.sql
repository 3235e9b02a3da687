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
