-- Identity and RBAC projections (of the NR_RBAC event log), and notification
-- subscriptions. Written by the registry's projection; read by gateway and notify.
CREATE TABLE noderouter_core.users (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE noderouter_core.roles (
    name         TEXT PRIMARY KEY,
    description  TEXT NOT NULL DEFAULT '',
    builtin      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- The permission catalogue: the platform's own, and those apps declare or require.
CREATE TABLE noderouter_core.permissions (
    name         TEXT PRIMARY KEY,
    description  TEXT NOT NULL DEFAULT '',
    source       TEXT NOT NULL           -- 'platform' or the declaring app's name
);

CREATE TABLE noderouter_core.role_permissions (
    role        TEXT NOT NULL REFERENCES noderouter_core.roles (name) ON DELETE CASCADE,
    permission  TEXT NOT NULL,
    PRIMARY KEY (role, permission)
);

CREATE TABLE noderouter_core.user_roles (
    user_id  TEXT NOT NULL REFERENCES noderouter_core.users (id) ON DELETE CASCADE,
    role     TEXT NOT NULL REFERENCES noderouter_core.roles (name) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role)
);

-- Machine tokens: only a hash of the secret is kept.
CREATE TABLE noderouter_core.api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    owner        TEXT NOT NULL,
    roles        TEXT[] NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

-- Logged-out session tokens, until they would have expired anyway.
CREATE TABLE noderouter_core.revoked_tokens (
    jti         TEXT PRIMARY KEY,
    expires_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE noderouter_core.subscriptions (
    user_id      TEXT NOT NULL,
    app_name     TEXT NOT NULL,
    action_name  TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (user_id, app_name, action_name)
);
CREATE INDEX subscriptions_by_action ON noderouter_core.subscriptions (app_name, action_name);

INSERT INTO noderouter_core.roles (name, description, builtin)
    VALUES ('admin', 'Holds every permission', TRUE);
INSERT INTO noderouter_core.permissions (name, description, source) VALUES
    ('apps:deploy', 'Deploy, roll back and delete apps', 'platform'),
    ('apps:read', 'List apps and their versions in the admin API', 'platform'),
    ('jobs:read_all', 'See every async job, not only one''s own', 'platform'),
    ('rbac:manage', 'Manage users, roles, grants and API tokens', 'platform');
