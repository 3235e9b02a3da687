-- The console's audit trail (GET /admin/api/audit) is gated by its own permission, so
-- a role can be given it without managing access itself. The admin role holds it, as
-- it holds every permission.
INSERT INTO noderouter_core.permissions (name, description, source)
VALUES ('audit:read', 'Read the audit trail: deploys, access and app variable changes', 'platform')
ON CONFLICT (name) DO NOTHING;
