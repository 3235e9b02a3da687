-- One-time tickets for the WebSocket hub (`POST /api/notify/ticket`, then
-- `/api/ws/notify?ticket=…`). Only a hash of the ticket is kept. Redeeming is a single
-- `DELETE … RETURNING`, so a ticket opens one socket even with several notify
-- instances racing for it (docs/adr/0006-one-time-ws-tickets-in-postgres.md).
CREATE TABLE noderouter_core.notify_tickets (
    ticket_hash  TEXT PRIMARY KEY,
    -- `sub` of the principal the ticket was issued to.
    subject      TEXT NOT NULL,
    -- 'user', 'api_token' or 'external'.
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    -- Roles of a non-user principal (a user's roles are read live).
    roles        TEXT[] NOT NULL DEFAULT '{}',
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX notify_tickets_expiry ON noderouter_core.notify_tickets (expires_at);
