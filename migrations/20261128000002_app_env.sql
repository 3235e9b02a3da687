-- Per-app variables and secrets, injected into the app's processes by the runner.
-- One module owns every statement on this table: shared/infra/src/appenv.rs.
-- `value` holds the plaintext bytes of a variable, or the ChaCha20-Poly1305 ciphertext
-- (tag included) of a secret, sealed with NR_SECRETS_KEY and `nonce`; the app and the
-- name are the associated data, so a ciphertext copied to another row does not open.
CREATE TABLE noderouter_core.app_env (
    app_name    TEXT NOT NULL,
    name        TEXT NOT NULL CHECK (name ~ '^[A-Z_][A-Z0-9_]{0,127}$'),
    secret      BOOLEAN NOT NULL,
    value       BYTEA NOT NULL,
    nonce       BYTEA CHECK ((secret AND octet_length(nonce) = 12) OR (NOT secret AND nonce IS NULL)),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (app_name, name)
);

INSERT INTO noderouter_core.permissions (name, description, source) VALUES
    ('apps:env', 'Set, unset and list apps'' variables and secrets', 'platform')
ON CONFLICT (name) DO NOTHING;
