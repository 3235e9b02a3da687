//! The `nav` menu fragment: nodes, their ids (unique across the manifest), labels,
//! icons, links and permissions, nested up to a limit.

use std::collections::BTreeMap;

use nr_contracts::manifest::NAV_FIELDS;
use serde_json::Value;

use super::{display_path, is_local_href, is_lucide_name, is_nav_id, kind, Ctx};

const MAX_NAV_DEPTH: usize = 8;

pub(super) fn check_nav_node(
    c: &mut Ctx,
    node: &Value,
    p: &str,
    depth: usize,
    seen: &mut BTreeMap<String, String>,
) {
    let at = display_path(p);
    let Some(o) = node.as_object() else {
        c.error(
            "manifest.nav",
            p,
            format!(
                "{at} must be an object with id and label, not {}",
                kind(node)
            ),
        );
        return;
    };
    if depth > MAX_NAV_DEPTH {
        c.error(
            "manifest.nav",
            p,
            format!("{at} is nested more than {MAX_NAV_DEPTH} levels deep"),
        );
        return;
    }
    c.unknown_fields(o, p, NAV_FIELDS);
    match o.get("id") {
        Some(Value::String(id)) if is_nav_id(id) => {
            if let Some(first) = seen.get(id) {
                c.error(
                    "manifest.nav",
                    &format!("{p}/id"),
                    format!(
                        "nav id {id:?} is used twice ({first} and {at}); nav ids must be unique"
                    ),
                );
            } else {
                seen.insert(id.clone(), at.clone());
            }
        }
        Some(Value::String(id)) => c.error(
            "manifest.nav",
            &format!("{p}/id"),
            format!(
                "{at}.id {id:?} must hold letters, digits, _ - . : (such as \"sales:reports\")"
            ),
        ),
        Some(other) => c.error(
            "manifest.nav",
            &format!("{p}/id"),
            format!("{at}.id must be a string, not {}", kind(other)),
        ),
        None => c.error(
            "manifest.nav",
            p,
            format!("{at}.id is required, unique across all apps (such as \"sales:root\")"),
        ),
    }
    match o.get("label") {
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        Some(Value::String(_)) => c.error(
            "manifest.nav",
            &format!("{p}/label"),
            format!("{at}.label must not be empty"),
        ),
        Some(other) => c.error(
            "manifest.nav",
            &format!("{p}/label"),
            format!("{at}.label must be a string, not {}", kind(other)),
        ),
        None => c.error(
            "manifest.nav",
            p,
            format!("{at}.label is required (the text of the menu entry)"),
        ),
    }
    if let Some(icon) = c.opt_str("manifest.nav", o, p, "icon") {
        if !is_lucide_name(icon) {
            c.error("manifest.nav", &format!("{p}/icon"), format!("{at}.icon {icon:?} must be a Lucide icon name in kebab case, such as \"calendar\" or \"bar-chart-2\""));
        }
    }
    if let Some(href) = c.opt_str("manifest.nav", o, p, "href") {
        if !is_local_href(href) {
            c.error("manifest.nav", &format!("{p}/href"), format!("{at}.href {href:?} must be a path on this platform (such as \"/apps/sales/\"): starting with a single /, without spaces, backslashes or control characters; an external URL is not allowed"));
        }
    }
    c.permission("manifest.nav", o, p, "permission");
    match o.get("children") {
        None | Some(Value::Null) => {}
        Some(Value::Array(children)) => {
            for (i, child) in children.iter().enumerate() {
                check_nav_node(c, child, &format!("{p}/children/{i}"), depth + 1, seen);
            }
        }
        Some(other) => c.error(
            "manifest.nav",
            &format!("{p}/children"),
            format!(
                "{at}.children must be an array of menu nodes, not {}",
                kind(other)
            ),
        ),
    }
}
