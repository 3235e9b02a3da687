-- A socket opened with a ticket closes when the credential the ticket was issued to
-- expires (unix seconds; null for a credential without an expiry, such as an API token).
ALTER TABLE noderouter_core.notify_tickets ADD COLUMN IF NOT EXISTS credential_exp BIGINT;
