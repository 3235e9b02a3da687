//! The shell's sidebar: the ONE list of the platform's own pages. A new admin page
//! adds one [`NavEntry`] to [`ADMIN_NAV`] (and its route in `shell.rs`); the layout
//! renders the entries the viewer may open, in this order, and marks the current one
//! (`active`, `aria-current="page"`). Apps' own menu entries are added below by the
//! shell's script from `GET /api/apps` `nav`. See `docs/admin-shell.md`.

use nr_auth::Principal;

use super::compose::esc;

/// One link of the sidebar's platform section.
pub(crate) struct NavEntry {
    /// The element id (`nr-link-…`), stable for tests and scripts.
    pub id: &'static str,
    /// The page's path; the entry is current when the request's path equals it (Run
    /// also on `/admin/run/<app>`).
    pub href: &'static str,
    /// The text shown.
    pub label: &'static str,
    /// The viewer needs ANY of these permissions to see the entry (empty: every
    /// signed-in user). The page itself checks again.
    pub any_of: &'static [&'static str],
}

/// The sidebar's platform pages, in display order.
pub(crate) const ADMIN_NAV: &[NavEntry] = &[
    NavEntry {
        id: "nr-link-home",
        href: "/admin",
        label: "Dashboard",
        any_of: &[],
    },
    NavEntry {
        id: "nr-link-admin-apps",
        href: "/admin/apps",
        label: "Manage apps",
        any_of: &[nr_auth::perms::APPS_DEPLOY, nr_auth::perms::APPS_READ],
    },
    NavEntry {
        id: "nr-link-schedules",
        href: "/admin/schedules",
        label: "Schedules",
        any_of: &[nr_auth::perms::APPS_DEPLOY, nr_auth::perms::APPS_READ],
    },
    NavEntry {
        id: "nr-link-notifications",
        href: "/admin/notifications",
        label: "Notifications",
        any_of: &[],
    },
    NavEntry {
        id: "nr-link-jobs",
        href: "/admin/jobs",
        label: "Jobs",
        any_of: &[],
    },
    NavEntry {
        id: "nr-link-run",
        href: "/admin/run",
        label: "Run an app",
        any_of: &[],
    },
    NavEntry {
        id: "nr-link-inbox",
        href: "/admin/inbox",
        label: "Notification history",
        any_of: &[],
    },
    NavEntry {
        id: "nr-link-users",
        href: "/admin/users",
        label: "Users",
        any_of: &[nr_auth::perms::RBAC_MANAGE],
    },
    NavEntry {
        id: "nr-link-roles",
        href: "/admin/roles",
        label: "Roles",
        any_of: &[nr_auth::perms::RBAC_MANAGE],
    },
    NavEntry {
        id: "nr-link-tokens",
        href: "/admin/tokens",
        label: "API tokens",
        any_of: &[nr_auth::perms::RBAC_MANAGE],
    },
    NavEntry {
        id: "nr-link-audit",
        href: "/admin/audit",
        label: "Audit",
        any_of: &[crate::console::AUDIT_READ],
    },
    NavEntry {
        id: "nr-link-profile",
        href: "/admin/profile",
        label: "Profile",
        any_of: &[],
    },
];

/// True when `principal` may see `entry`.
fn visible(entry: &NavEntry, principal: &Principal) -> bool {
    entry.any_of.is_empty() || entry.any_of.iter().any(|p| principal.has(p))
}

/// The sidebar's platform links for `principal` on the page at `path`.
pub(crate) fn render(principal: Option<&Principal>, path: &str) -> String {
    let path = match path.trim_end_matches('/') {
        "" | "/admin" => "/admin",
        // The run form of one app is the Run page.
        p if p.starts_with("/admin/run/") => "/admin/run",
        p => p,
    };
    let mut out = String::new();
    for e in ADMIN_NAV {
        if !principal.is_some_and(|p| visible(e, p)) {
            continue;
        }
        let current = e.href == path;
        out.push_str(&format!(
            "<a class=\"nr-nav-link{}\" id=\"{}\" href=\"{}\"{}>{}</a>\n",
            if current { " active" } else { "" },
            esc(e.id),
            esc(e.href),
            if current {
                " aria-current=\"page\""
            } else {
                ""
            },
            esc(e.label)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    fn user(perms: &[&str]) -> Principal {
        Principal::new(
            "u".into(),
            "u".into(),
            vec![],
            nr_auth::PrincipalKind::User,
            Arc::new(perms.iter().map(|p| p.to_string()).collect::<HashSet<_>>()),
        )
    }

    #[test]
    fn entries_follow_permissions_and_mark_the_current_page() {
        let reader = user(&[nr_auth::perms::APPS_READ]);
        let html = render(Some(&reader), "/admin/apps");
        assert!(
            html.contains("id=\"nr-link-admin-apps\" href=\"/admin/apps\" aria-current=\"page\"")
        );
        assert_eq!(html.matches("aria-current").count(), 1);
        let plain = render(Some(&user(&[])), "/admin/");
        assert!(!plain.contains("nr-link-admin-apps"));
        assert!(plain.contains("nr-nav-link active\" id=\"nr-link-home\""));
        assert_eq!(render(None, "/admin"), "");
        let run = render(Some(&user(&[])), "/admin/run/sales");
        assert!(run.contains("id=\"nr-link-run\" href=\"/admin/run\" aria-current=\"page\""));
        assert_eq!(run.matches("aria-current").count(), 1);
    }

    #[test]
    fn ids_and_paths_are_unique() {
        let mut seen = HashSet::new();
        for e in ADMIN_NAV {
            assert!(seen.insert(e.id) && seen.insert(e.href), "{}", e.id);
            assert!(e.href.starts_with("/admin"));
        }
    }
}
