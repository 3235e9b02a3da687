-- The platform's permissions keep their own descriptions. Before, an app declaring
-- one of them in its manifest's `permissions[]` (say `rbac:manage`, "harmless: read
-- the dashboard") replaced the text an admin reads when granting it; the registry no
-- longer writes over a description it does not own, and this puts back any text an
-- app wrote.
UPDATE noderouter_core.permissions AS p
SET description = t.description
FROM (VALUES
    ('apps:deploy', 'Deploy, roll back and delete apps'),
    ('apps:read', 'List apps and their versions in the admin API'),
    ('apps:env', 'Set, unset and list apps'' variables and secrets'),
    ('jobs:read_all', 'See every async job, not only one''s own'),
    ('jobs:cancel_all', 'Cancel any user''s async job'),
    ('jobs:requeue_all', 'Re-queue any user''s failed async job'),
    ('metrics:read', 'Read /metrics on the public address'),
    ('rbac:manage', 'Manage users, roles, grants and API tokens'),
    ('audit:read', 'Read the audit trail: deploys, access, app variable and schedule changes')
) AS t(name, description)
WHERE p.name = t.name AND p.source = 'platform';
