//! `actions[]`: each declared action's name, display name and permission, and no name
//! twice.

use std::collections::BTreeMap;

use nr_contracts::manifest::ACTION_FIELDS;
use serde_json::{Map, Value};

use super::{display_path, is_action_slug, kind, Ctx};

pub(super) fn check_actions(c: &mut Ctx, obj: &Map<String, Value>) {
    let actions = match obj.get("actions") {
        None | Some(Value::Null) => return,
        Some(Value::Array(a)) => a,
        Some(other) => {
            c.error(
                "manifest.actions",
                "/actions",
                format!(
                    "actions must be an array of action descriptors, not {}",
                    kind(other)
                ),
            );
            return;
        }
    };
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, action) in actions.iter().enumerate() {
        let p = format!("/actions/{i}");
        let at = display_path(&p);
        let Some(o) = action.as_object() else {
            c.error(
                "manifest.actions",
                &p,
                format!(
                    "{at} must be an object with name and display_name, not {}",
                    kind(action)
                ),
            );
            continue;
        };
        c.unknown_fields(o, &p, ACTION_FIELDS);
        match o.get("name") {
            Some(Value::String(name)) if is_action_slug(name) => {
                if let Some(first) = seen.get(name) {
                    c.error("manifest.actions", &format!("{p}/name"), format!("action {name:?} is declared twice (actions[{first}] and actions[{i}]); action names must be unique"));
                } else {
                    seen.insert(name.clone(), i);
                }
            }
            Some(Value::String(name)) => c.error(
                "manifest.actions",
                &format!("{p}/name"),
                format!("{at}.name {name:?} must be a slug: letters, digits, _ and -, starting with a letter or digit, at most 64 characters"),
            ),
            Some(other) => c.error("manifest.actions", &format!("{p}/name"), format!("{at}.name must be a string, not {}", kind(other))),
            None => c.error("manifest.actions", &p, format!("{at}.name is required (a slug such as \"deal_closed\")")),
        }
        match o.get("display_name") {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(Value::String(_)) => c.error(
                "manifest.actions",
                &format!("{p}/display_name"),
                format!("{at}.display_name must not be empty"),
            ),
            Some(other) => c.error(
                "manifest.actions",
                &format!("{p}/display_name"),
                format!("{at}.display_name must be a string, not {}", kind(other)),
            ),
            None => c.error(
                "manifest.actions",
                &p,
                format!("{at}.display_name is required (the label users see when they subscribe)"),
            ),
        }
        c.opt_str("manifest.actions", o, &p, "description");
        c.permission("manifest.actions", o, &p, "required_permission");
    }
}
