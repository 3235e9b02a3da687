-- Identity hardening: the platform's new permissions, and what a one-time WebSocket
-- ticket must remember of the session it was issued to, so the socket it opens closes
-- when that session ends (logout, password change).
INSERT INTO noderouter_core.permissions (name, description, source) VALUES
    ('jobs:cancel_all', 'Cancel any user''s async job', 'platform'),
    ('metrics:read', 'Read /metrics on the public address', 'platform')
ON CONFLICT (name) DO NOTHING;

ALTER TABLE noderouter_core.notify_tickets
    ADD COLUMN IF NOT EXISTS jti TEXT,
    ADD COLUMN IF NOT EXISTS stamp TEXT;
