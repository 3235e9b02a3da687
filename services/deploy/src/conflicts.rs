//! Conflicts between apps, found at deploy and refused loudly, never last-write-wins:
//! two apps whose names differ only in case (409), a nav id used by another app (409,
//! naming both apps), a permission token declared by another app (a warning: sharing a
//! token is legitimate).
//!
//! Deploy keeps a [`Catalogue`] of the current apps by following `NR_APPS`.

use std::collections::BTreeMap;

use nr_contracts::events::{AppChange, AppUpdated};
use serde_json::Value;

use crate::findings::{finding, Finding};

/// What one app claims that another could also claim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppFacts {
    /// Every nav node id of the app's menu fragment, children included.
    pub nav_ids: Vec<String>,
    /// Permission tokens the app declares in `permissions`.
    pub permissions: Vec<String>,
}

impl AppFacts {
    /// Reads the facts from a stored manifest, leniently (it passed the checks once).
    pub fn from_manifest(manifest: &Value) -> AppFacts {
        fn walk(nodes: &Value, out: &mut Vec<String>) {
            for node in nodes.as_array().into_iter().flatten() {
                if let Some(id) = node.get("id").and_then(Value::as_str) {
                    out.push(id.to_owned());
                }
                if let Some(children) = node.get("children") {
                    walk(children, out);
                }
            }
        }
        let mut nav_ids = Vec::new();
        if let Some(nav) = manifest.get("nav") {
            walk(nav, &mut nav_ids);
        }
        let permissions = manifest
            .get("permissions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("name").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        AppFacts {
            nav_ids,
            permissions,
        }
    }
}

/// The apps currently deployed (deleted ones left out), by exact name.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    apps: BTreeMap<String, AppFacts>,
}

impl Catalogue {
    pub fn insert(&mut self, app: &str, facts: AppFacts) {
        self.apps.insert(app.to_owned(), facts);
    }

    pub fn remove(&mut self, app: &str) {
        self.apps.remove(app);
    }

    /// Applies one `app.updated` event.
    pub fn apply(&mut self, event: &AppUpdated) {
        if event.change == AppChange::Deleted {
            self.remove(&event.app_name);
        } else {
            self.insert(&event.app_name, AppFacts::from_manifest(&event.manifest));
        }
    }

    pub fn contains(&self, app: &str) -> bool {
        self.apps.contains_key(app)
    }

    pub fn len(&self) -> usize {
        self.apps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }
}

/// Conflicts of `app` (with `facts`) against every other app of the catalogue.
#[derive(Debug, Default, PartialEq)]
pub struct CrossApp {
    /// Refuse with 409.
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

/// Checks `app` against the other apps. The app's own current version is not a conflict.
pub fn check(app: &str, facts: &AppFacts, catalogue: &Catalogue) -> CrossApp {
    let mut out = CrossApp::default();
    let manifest = Some("manifest.json");
    for (other, other_facts) in &catalogue.apps {
        if other == app {
            continue;
        }
        if other.eq_ignore_ascii_case(app) {
            out.errors.push(finding(
                "conflict.app_name",
                manifest,
                None,
                format!("app {app:?} differs only in case from the deployed app {other:?}; app names must differ in more than case (delete {other:?} first or pick another name)"),
            ));
        }
        for id in &facts.nav_ids {
            if other_facts.nav_ids.contains(id) {
                out.errors.push(finding(
                    "conflict.nav_id",
                    manifest,
                    None,
                    format!("nav id {id:?} of app {app:?} is already used by app {other:?}; nav ids must be unique across apps (prefix them with the app name, such as \"{app}:{}\")", id.rsplit(':').next().unwrap_or(id)),
                ));
            }
        }
        for token in &facts.permissions {
            if other_facts.permissions.contains(token) {
                out.warnings.push(finding(
                    "conflict.permission",
                    manifest,
                    None,
                    format!("permission {token:?} of app {app:?} is also declared by app {other:?}; sharing a token is fine if intended, otherwise name it <app>:<action>"),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts(nav: &[&str], perms: &[&str]) -> AppFacts {
        AppFacts {
            nav_ids: nav.iter().map(|s| s.to_string()).collect(),
            permissions: perms.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn catalogue() -> Catalogue {
        let mut c = Catalogue::default();
        c.insert(
            "crm",
            facts(&["crm:root", "shared:menu"], &["crm:read", "reports:read"]),
        );
        c.insert("notes", facts(&[], &[]));
        c
    }

    #[test]
    fn a_nav_id_used_by_another_app_is_an_error_naming_both_apps() {
        let r = check(
            "sales",
            &facts(&["sales:root", "shared:menu"], &[]),
            &catalogue(),
        );
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].rule, "conflict.nav_id");
        let m = &r.errors[0].message;
        assert!(
            m.contains("\"sales\"") && m.contains("\"crm\"") && m.contains("shared:menu"),
            "{m}"
        );
    }

    #[test]
    fn a_permission_declared_by_another_app_is_a_warning() {
        let r = check(
            "sales",
            &facts(&[], &["reports:read", "sales:read"]),
            &catalogue(),
        );
        assert!(r.errors.is_empty());
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(r.warnings[0].rule, "conflict.permission");
        assert!(r.warnings[0].message.contains("crm"));
    }

    #[test]
    fn names_differing_only_in_case_conflict_and_the_same_name_does_not() {
        let r = check("Notes", &AppFacts::default(), &catalogue());
        assert_eq!(r.errors[0].rule, "conflict.app_name");
        assert!(r.errors[0].message.contains("\"notes\""));
        assert!(check("notes", &AppFacts::default(), &catalogue())
            .errors
            .is_empty());
    }

    #[test]
    fn an_app_does_not_conflict_with_its_own_current_version() {
        let r = check("crm", &facts(&["crm:root"], &["crm:read"]), &catalogue());
        assert_eq!(r, CrossApp::default());
    }

    #[test]
    fn the_catalogue_follows_deploys_and_deletes() {
        let mut c = Catalogue::default();
        let mut ev = AppUpdated {
            app_name: "sales".into(),
            change: AppChange::Deployed,
            version: "1.0.0".into(),
            sha256: "x".into(),
            bundle_key: "k".into(),
            manifest: json!({"nav": [{"id": "s:root", "label": "S", "children": [{"id": "s:child", "label": "C"}]}],
                             "permissions": [{"name": "s:read"}]}),
            previous_version: None,
            actor: None,
            actor_id: None,
            undoes: None,
        };
        c.apply(&ev);
        let r = check("other", &facts(&["s:child"], &["s:read"]), &c);
        assert_eq!((r.errors.len(), r.warnings.len()), (1, 1));
        ev.change = AppChange::Deleted;
        c.apply(&ev);
        assert!(c.is_empty());
        assert_eq!(
            check("other", &facts(&["s:child"], &["s:read"]), &c),
            CrossApp::default()
        );
    }
}
