//! The rules of `manifest.json`: the author guide's fields, the plugin contract's
//! `api_version`, `nav` and `permissions`, and unknown fields. Pure: bytes in, verdict
//! out. Every error of one manifest is reported at once, each with its field and line.
//!
//! The shape of every field (its type and range) is the typed manifest's
//! (`nr_contracts::manifest::Manifest`, the type every service reads stored manifests
//! with); a manifest passes here only if it also parses as that type, so nothing
//! deploy accepts can fail downstream.

use std::collections::{BTreeMap, HashMap};

use contract::PERMISSION_FIELDS;
use nr_contracts::manifest::{self as contract, Manifest, Seconds};
use serde::Deserialize as _;
use serde_json::{Map, Value};

use crate::conflicts::AppFacts;
use crate::findings::{finding, Finding, Refused};
use crate::jsonpos;

mod actions;
mod beyond;
mod gates;
use gates::{near_miss, GATES};
mod format;
mod jobs;
mod nav;
mod schedules;

pub use format::{
    check_api_version, display_path, is_action_slug, is_local_href, is_lucide_name, is_nav_id,
    is_permission_token, is_valid_app_name, parse_semver, ApiCompat,
};
use nav::check_nav_node;

/// The contract version of this platform. A bundle's `api_version` is compared with it.
pub const PLATFORM_API_VERSION: &str = "1.0.0";

const FILE: &str = "manifest.json";

/// Fields the platform knows (the typed manifest's); anything else is kept and warned
/// about.
pub const KNOWN_FIELDS: &[&str] = contract::FIELDS;

/// A manifest that passed.
#[derive(Debug, Clone)]
pub struct ManifestOk {
    pub app_name: String,
    pub version: String,
    /// The manifest as written, unknown fields included.
    pub manifest: Value,
    /// The manifest as every service reads it.
    pub typed: Manifest,
    pub warnings: Vec<Finding>,
    /// What other apps can conflict with.
    pub facts: AppFacts,
}

struct Ctx {
    lines: HashMap<String, u32>,
    errors: Vec<Finding>,
    warnings: Vec<Finding>,
}

impl Ctx {
    fn line(&self, pointer: &str) -> Option<u32> {
        self.lines.get(pointer).copied()
    }

    fn error(&mut self, rule: &str, pointer: &str, message: String) {
        let line = self.line(pointer);
        self.errors.push(finding(rule, Some(FILE), line, message));
    }

    fn warn(&mut self, rule: &str, pointer: &str, message: String) {
        let line = self.line(pointer);
        self.warnings.push(finding(rule, Some(FILE), line, message));
    }

    fn unknown_fields(&mut self, obj: &Map<String, Value>, pointer: &str, known: &[&str]) {
        for key in obj.keys() {
            if !known.contains(&key.as_str()) {
                let p = format!("{pointer}/{}", jsonpos::pointer_token(key));
                let field = display_path(&p);
                // A gate must not be left open by a typo: a near miss of a field that
                // closes something is an error, not a warning.
                // A permission named as another object spells it (`required_permission`
                // on a route, `permission` at the top) counts as a near miss too.
                let meant = GATES.iter().find_map(|family| {
                    let here = family.iter().find(|g| known.contains(g))?;
                    family.iter().any(|g| near_miss(key, g)).then_some(*here)
                });
                if let Some(meant) = meant {
                    self.error(
                        "manifest.unknown_field",
                        &p,
                        format!("unknown field {field:?}: did you mean {meant:?}? A misspelt {meant:?} would leave open what it closes"),
                    );
                    continue;
                }
                self.warn(
                    "manifest.unknown_field",
                    &p,
                    format!(
                        "unknown field {field:?}: kept in the stored manifest, but the platform does not use it (known here: {})",
                        known.join(", ")
                    ),
                );
            }
        }
    }

    /// An optional string field; `null` counts as absent.
    fn opt_str<'v>(
        &mut self,
        rule: &str,
        obj: &'v Map<String, Value>,
        pointer: &str,
        key: &str,
    ) -> Option<&'v str> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                let p = format!("{pointer}/{key}");
                let field = display_path(&p);
                self.error(
                    rule,
                    &p,
                    format!("{field} must be a string, not {}", kind(other)),
                );
                None
            }
        }
    }

    /// A time limit: absent or null is the platform's default; otherwise a number of
    /// seconds in the typed manifest's range.
    fn seconds(&mut self, obj: &Map<String, Value>, key: &str) {
        let Some(value) = obj.get(key).filter(|v| !v.is_null()) else {
            return;
        };
        if Seconds::deserialize(value).is_err() {
            let shown = match value {
                Value::Number(n) => format!("{n}"),
                other => format!("{} ({other})", kind(other)),
            };
            self.error(
                &format!("manifest.{key}"),
                &format!("/{key}"),
                format!("{key} must be {}, not {shown}", contract::SECONDS_EXPECTED),
            );
        }
    }

    /// A permission field: absent, null or empty is open; otherwise a token.
    fn permission(&mut self, rule: &str, obj: &Map<String, Value>, pointer: &str, key: &str) {
        if let Some(token) = self.opt_str(rule, obj, pointer, key) {
            if !token.is_empty() && !is_permission_token(token) {
                let p = format!("{pointer}/{key}");
                let field = display_path(&p);
                self.error(
                    rule,
                    &p,
                    format!("{field} {token:?} must be empty (open to any signed-in user) or a <resource>:<action> token such as \"sales:access\""),
                );
            }
        }
    }
}

/// `actions[1].name` → `actions`; empty (the manifest itself) → `json`.
fn top_field(field: &str) -> &str {
    let end = field.find(['.', '[']).unwrap_or(field.len());
    match &field[..end] {
        "" => "json",
        top => top,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// True when `bundle` is `app` followed by `_` or `-` and the manifest's `version`
/// (`app_material_master_1.0.0` for `app_material_master` version `1.0.0`): authors
/// keep one zip per release.
pub(crate) fn is_versioned_name(bundle: &str, app: &str, version: Option<&str>) -> bool {
    let Some(version) = version.filter(|v| !v.is_empty()) else {
        return false;
    };
    bundle
        .strip_prefix(app)
        .and_then(|rest| rest.strip_prefix('_').or_else(|| rest.strip_prefix('-')))
        .is_some_and(|rest| rest == version)
}

/// Checks `manifest.json` of a bundle named `bundle_name` (the zip's file name without
/// `.zip`, or the folder's name). Errors refuse with 422; warnings come back with it.
pub fn check_manifest(raw: &[u8], bundle_name: &str) -> Result<ManifestOk, Refused> {
    let text = String::from_utf8_lossy(raw);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let not_json = |e: serde_json::Error| {
        Refused::one(
            422,
            "manifest.json",
            Some(FILE),
            Some(e.line() as u32),
            format!("manifest.json is not valid JSON: {e}"),
        )
    };
    let mut commented = None;
    let manifest: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        // The guide's own templates annotate fields with `//` comments: they are read
        // as the whitespace they stand for, and the deploy says so.
        Err(e) => match jsonpos::strip_comments(text) {
            Some((stripped, line)) => {
                let v = serde_json::from_str(&stripped).map_err(not_json)?;
                commented = Some((stripped, line));
                v
            }
            None => return Err(not_json(e)),
        },
    };
    let text = commented.as_ref().map_or(text, |(t, _)| t.as_str());
    let Some(obj) = manifest.as_object() else {
        return Err(Refused::one(
            422,
            "manifest.json",
            Some(FILE),
            Some(1),
            format!(
                "manifest.json must be a JSON object, not {}",
                kind(&manifest)
            ),
        ));
    };
    let mut c = Ctx {
        lines: jsonpos::lines(text),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    if let Some((_, line)) = commented {
        c.warnings.push(finding(
            "manifest.comments",
            Some(FILE),
            Some(line),
            format!("manifest.json has comments (the first on line {line}): JSON allows none, so they were ignored; remove them for other tools that read it"),
        ));
    }

    // app_name
    let app_name = match obj.get("app_name") {
        Some(Value::String(s)) => {
            if !is_valid_app_name(s) {
                c.error(
                    "manifest.app_name",
                    "/app_name",
                    format!("app_name {s:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_-]{{0,63}}$ (letters, digits, _ and -, starting with a letter or digit, at most 64 characters)"),
                );
            } else if bundle_name.is_empty() {
                c.error(
                    "manifest.app_name",
                    "/app_name",
                    format!("the upload has no file name to check app_name {s:?} against: name the zip {s}.zip (or {s}_<version>.zip or {s}-<version>.zip with the manifest's version)"),
                );
            } else if s != bundle_name
                && !is_versioned_name(bundle_name, s, obj.get("version").and_then(Value::as_str))
            {
                c.error(
                    "manifest.app_name",
                    "/app_name",
                    format!("app_name {s:?} does not match the bundle name {bundle_name:?}: name the zip {s}.zip (or {s}_<version>.zip or {s}-<version>.zip with the manifest's version, or the folder {s})"),
                );
            }
            s.clone()
        }
        Some(other) => {
            c.error(
                "manifest.app_name",
                "/app_name",
                format!("app_name must be a string, not {}", kind(other)),
            );
            String::new()
        }
        None => {
            c.errors.push(finding(
                "manifest.app_name",
                Some(FILE),
                None,
                "app_name is required: the app's name, equal to the zip's name without .zip",
            ));
            String::new()
        }
    };

    // version
    let version = match obj.get("version") {
        Some(Value::String(s)) => {
            if let Err(e) = parse_semver(s) {
                c.error(
                    "manifest.version",
                    "/version",
                    format!("version {s:?} is not a strict semver (MAJOR.MINOR.PATCH such as \"1.0.0\"; no \"v\" prefix, no leading zeros, no ranges): {e}"),
                );
            }
            s.clone()
        }
        Some(other) => {
            c.error(
                "manifest.version",
                "/version",
                format!(
                    "version must be a string such as \"1.0.0\", not {}",
                    kind(other)
                ),
            );
            String::new()
        }
        None => {
            c.errors.push(finding(
                "manifest.version",
                Some(FILE),
                None,
                "version is required, a semver string such as \"1.0.0\"",
            ));
            String::new()
        }
    };

    if let Some(name) = c.opt_str("manifest.display_name", obj, "", "display_name") {
        let n = name.chars().count();
        if n > 40 {
            c.warn(
                "manifest.display_name",
                "/display_name",
                format!("display_name is {n} characters; keep it under 40 so it fits the admin UI"),
            );
        }
    }
    c.opt_str("manifest.description", obj, "", "description");
    c.permission(
        "manifest.required_permission",
        obj,
        "",
        "required_permission",
    );

    for key in ["timeout_s", "job_timeout_s"] {
        c.seconds(obj, key);
    }

    actions::check_actions(&mut c, obj);

    // api_version
    let platform = semver::Version::new(1, 0, 0);
    let declared = match obj.get("api_version") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(other),
    };
    match declared {
        Err(other) => c.error(
            "manifest.api_version",
            "/api_version",
            format!(
                "api_version must be a string such as \"{PLATFORM_API_VERSION}\", not {}",
                kind(other)
            ),
        ),
        Ok(declared) => match check_api_version(declared, &platform) {
            ApiCompat::Ok => {}
            ApiCompat::Warn(m) => c.warn("manifest.api_version", "/api_version", m),
            ApiCompat::Refuse(m) => c.error("manifest.api_version", "/api_version", m),
        },
    }

    let mut facts = AppFacts::default();
    match obj.get("nav") {
        None | Some(Value::Null) => {}
        Some(Value::Array(nodes)) => {
            let mut seen: BTreeMap<String, String> = BTreeMap::new();
            for (i, node) in nodes.iter().enumerate() {
                check_nav_node(&mut c, node, &format!("/nav/{i}"), 1, &mut seen);
            }
            facts.nav_ids = seen.into_keys().collect();
        }
        Some(other) => c.error(
            "manifest.nav",
            "/nav",
            format!("nav must be an array of menu nodes, not {}", kind(other)),
        ),
    }
    match obj.get("permissions") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for (i, item) in items.iter().enumerate() {
                let p = format!("/permissions/{i}");
                let Some(o) = item.as_object() else {
                    c.error("manifest.permissions", &p, format!("{} must be an object {{\"name\": \"<resource>:<action>\", \"description\": \"...\"}}, not {}", display_path(&p), kind(item)));
                    continue;
                };
                c.unknown_fields(o, &p, PERMISSION_FIELDS);
                c.opt_str("manifest.permissions", o, &p, "description");
                match o.get("name") {
                    Some(Value::String(name)) if is_permission_token(name) => {
                        if let Some(first) = seen.get(name) {
                            c.warn("manifest.permissions", &format!("{p}/name"), format!("permission {name:?} is declared twice (permissions[{first}] and permissions[{i}])"));
                        } else {
                            seen.insert(name.clone(), i);
                        }
                    }
                    Some(Value::String(name)) => c.error("manifest.permissions", &format!("{p}/name"), format!("{}.name {name:?} must be a <resource>:<action> token such as \"sales:read\"", display_path(&p))),
                    _ => c.error("manifest.permissions", &p, format!("{}.name is required: a <resource>:<action> token such as \"sales:read\"", display_path(&p))),
                }
            }
            facts.permissions = seen.into_keys().collect();
        }
        Some(other) => c.error(
            "manifest.permissions",
            "/permissions",
            format!(
                "permissions must be an array of {{name, description}}, not {}",
                kind(other)
            ),
        ),
    }

    jobs::check_jobs_and_limits(&mut c, obj);
    schedules::check_schedules(&mut c, obj);
    beyond::check_routes(&mut c, obj);

    c.unknown_fields(obj, "", KNOWN_FIELDS);

    if !c.errors.is_empty() {
        return Err(Refused::many(422, c.errors).with_warnings(&c.warnings));
    }
    // Every rule above agrees with the type; this keeps it so if they ever drift.
    let typed = Manifest::from_value(&manifest).map_err(|e| {
        let rule = format!("manifest.{}", top_field(&e.field));
        let line = c.line(&e.pointer);
        Refused::many(422, vec![finding(&rule, Some(FILE), line, e.to_string())])
    })?;
    Ok(ManifestOk {
        app_name,
        version,
        manifest,
        typed,
        warnings: c.warnings,
        facts,
    })
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "manifest_typed_tests.rs"]
mod typed_tests;
