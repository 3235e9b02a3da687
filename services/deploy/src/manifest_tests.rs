use super::*;
use serde_json::json;

fn check(m: serde_json::Value) -> Result<ManifestOk, Refused> {
    check_manifest(
        serde_json::to_string_pretty(&m).unwrap().as_bytes(),
        "sales",
    )
}

fn base() -> serde_json::Value {
    json!({"app_name": "sales", "version": "1.0.0", "api_version": "1.0.0"})
}

fn with(extra: serde_json::Value) -> serde_json::Value {
    let mut m = base();
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    m
}

fn rules(r: &Refused) -> Vec<&str> {
    r.details.iter().map(|d| d.rule.as_str()).collect()
}

/// A tiny deterministic generator for property-style tests (no extra dependency).
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn string(&mut self, alphabet: &[u8], max: u64) -> String {
        let len = self.below(max + 1);
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len() as u64) as usize] as char)
            .collect()
    }
}

#[test]
fn the_guide_example_manifest_passes_with_only_the_api_version_warning() {
    let m = json!({
        "app_name": "sales",
        "display_name": "Human-Readable Title",
        "version": "1.0.0",
        "description": "Shown in the admin UI app list.",
        "required_permission": "sales:access",
        "actions": [
            {"name": "deal_closed", "display_name": "Deal Closed", "description": "x", "required_permission": "sales:access"},
            {"name": "report_ready", "display_name": "Report Ready", "required_permission": "reports:read"},
            {"name": "open_event", "display_name": "Open Event", "description": "Any user."}
        ]
    });
    let ok = check(m).unwrap();
    assert_eq!(ok.app_name, "sales");
    assert_eq!(ok.warnings.len(), 1, "{:?}", ok.warnings);
    assert_eq!(ok.warnings[0].rule, "manifest.api_version");
    assert!(ok.warnings[0].message.contains("treated as 1.0.0"));
}

#[test]
fn the_starter_manifest_with_empty_permission_and_no_actions_passes_clean() {
    let ok = check(with(
        json!({"display_name": "x", "description": "d", "required_permission": "", "actions": []}),
    ))
    .unwrap();
    assert!(ok.warnings.is_empty(), "{:?}", ok.warnings);
}

#[test]
fn strict_semver_accepts_full_versions_and_refuses_the_rest() {
    for good in [
        "0.0.0",
        "1.2.3",
        "10.20.30",
        "1.0.0-alpha.1",
        "1.0.0+build.5",
        "1.0.0-rc.1+sha.abc",
    ] {
        assert!(parse_semver(good).is_ok(), "{good}");
    }
    for bad in [
        "", "1", "1.0", "v1.0.0", "01.0.0", "1.01.0", "1.0.00", "1.0.0.0", "^1.0.0", ">=1.0.0",
        "1.x.0", " 1.0.0", "1.0.0 ", "1.0.0-", "latest",
    ] {
        assert!(parse_semver(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn semver_property_generated_cores_parse_and_prefixes_or_leading_zeros_do_not() {
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    for _ in 0..500 {
        let (a, b, c) = (g.below(1000), g.below(1000), g.below(1000));
        let v = format!("{a}.{b}.{c}");
        assert_eq!(
            parse_semver(&v).map(|x| (x.major, x.minor, x.patch)),
            Ok((a, b, c))
        );
        assert!(parse_semver(&format!("v{v}")).is_err());
        assert!(parse_semver(&format!("0{a}.{b}.{c}")).is_err());
        assert!(parse_semver(&format!("{a}.{b}")).is_err());
    }
}

#[test]
fn a_bad_version_is_refused_with_field_and_line() {
    let r = check(with(json!({"version": "v1.0"}))).unwrap_err();
    assert_eq!(r.status, 422);
    assert_eq!(r.details[0].rule, "manifest.version");
    assert_eq!(r.details[0].file.as_deref(), Some("manifest.json"));
    assert!(r.details[0].line.is_some());
    assert!(r.error.contains("strict semver"), "{}", r.error);
    let r = check(json!({"app_name": "sales"})).unwrap_err();
    assert!(r.error.contains("version is required"));
}

#[test]
fn api_version_compatibility_follows_the_plugin_contract() {
    let p = semver::Version::new(1, 4, 2);
    assert_eq!(check_api_version(Some("1.4.0"), &p), ApiCompat::Ok);
    assert_eq!(
        check_api_version(Some("1.4.9"), &p),
        ApiCompat::Ok,
        "patch is ignored"
    );
    assert!(matches!(
        check_api_version(Some("1.2.0"), &p),
        ApiCompat::Warn(_)
    ));
    assert!(
        matches!(check_api_version(Some("1.5.0"), &p), ApiCompat::Refuse(m) if m.contains("newer platform"))
    );
    assert!(
        matches!(check_api_version(Some("2.0.0"), &p), ApiCompat::Refuse(m) if m.contains("major"))
    );
    assert!(matches!(
        check_api_version(Some("0.9.0"), &p),
        ApiCompat::Refuse(_)
    ));
    assert!(
        matches!(check_api_version(Some("1.4"), &p), ApiCompat::Refuse(m) if m.contains("strict semver"))
    );
    assert!(matches!(check_api_version(None, &p), ApiCompat::Warn(m) if m.contains("absent")));
}

#[test]
fn api_version_property_over_generated_versions() {
    let mut g = Gen(42);
    let platform = semver::Version::new(3, 5, 1);
    for _ in 0..500 {
        let (a, b, c) = (g.below(6), g.below(10), g.below(10));
        let got = check_api_version(Some(&format!("{a}.{b}.{c}")), &platform);
        let want = if a != 3 || b > 5 {
            "refuse"
        } else if b < 5 {
            "warn"
        } else {
            "ok"
        };
        let is = match got {
            ApiCompat::Ok => "ok",
            ApiCompat::Warn(_) => "warn",
            ApiCompat::Refuse(_) => "refuse",
        };
        assert_eq!(is, want, "{a}.{b}.{c}");
    }
}

#[test]
fn api_version_in_a_manifest_refuses_or_warns() {
    assert!(check(with(json!({"api_version": "1.0.3"})))
        .unwrap()
        .warnings
        .is_empty());
    let r = check(with(json!({"api_version": "2.0.0"}))).unwrap_err();
    assert_eq!(rules(&r), ["manifest.api_version"]);
    let r = check(with(json!({"api_version": "1.1.0"}))).unwrap_err();
    assert!(r.error.contains("newer platform"));
    let r = check(with(json!({"api_version": 1}))).unwrap_err();
    assert!(r.error.contains("must be a string"));
}

#[test]
fn app_name_pattern_table() {
    assert!(is_valid_app_name("app_sales-1"));
    assert!(is_valid_app_name("9lives"));
    assert!(is_valid_app_name(&"a".repeat(64)));
    for bad in ["", "_x", "-x", "a b", "a.b", "é", "a/b", &"a".repeat(65)] {
        assert!(!is_valid_app_name(bad), "{bad}");
    }
}

#[test]
fn app_name_property_matches_the_guide_regex() {
    let re = regex::Regex::new(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$").unwrap();
    let mut g = Gen(7);
    let alphabet = b"aZ9_-. /\\:*>";
    for _ in 0..3000 {
        let s = g.string(alphabet, 70);
        assert_eq!(is_valid_app_name(&s), re.is_match(&s), "{s:?}");
    }
}

#[test]
fn app_name_must_match_the_bundle_name() {
    let r = check_manifest(br#"{"app_name":"sales","version":"1.0.0"}"#, "crm").unwrap_err();
    assert!(
        r.error.contains("does not match the bundle name \"crm\""),
        "{}",
        r.error
    );
    let ok = br#"{"app_name":"app_material_master","version":"1.0.0"}"#;
    // An upload without a file name (or named just ".zip") is not let through unchecked.
    let r = check_manifest(ok, "").unwrap_err();
    assert!(
        r.error.contains("the upload has no file name")
            && r.error.contains("name the zip app_material_master.zip"),
        "{}",
        r.error
    );
    assert!(check_manifest(ok, "app_material_master_1.0.0").is_ok());
    assert!(check_manifest(ok, "app_material_master-1.0.0").is_ok());
    for other in [
        "app_material_master_1.0.1",
        "app_material_master_",
        "app_material_master1.0.0",
        "other_1.0.0",
        "app_material_master_1.0.0_x",
    ] {
        let r = check_manifest(ok, other).unwrap_err();
        assert!(
            r.error.contains("name the zip app_material_master.zip"),
            "{other}: {}",
            r.error
        );
    }
    let r = check(with(json!({"app_name": "sa les"}))).unwrap_err();
    assert!(r.error.contains("must match"));
    let r = check(with(json!({"app_name": 5}))).unwrap_err();
    assert!(r.error.contains("must be a string"));
}

#[test]
fn permission_tokens_table() {
    for good in [
        "sales:access",
        "reports:read",
        "a:b",
        "sched-1:read.all",
        "Sales:Write",
    ] {
        assert!(is_permission_token(good), "{good}");
    }
    for bad in [
        "",
        "sales",
        ":read",
        "sales:",
        "a:b:c",
        "sales :read",
        "sa/les:read",
        "_x:read",
    ] {
        assert!(!is_permission_token(bad), "{bad}");
    }
}

#[test]
fn required_permission_is_empty_or_a_token() {
    assert!(check(with(json!({"required_permission": ""}))).is_ok());
    assert!(check(with(json!({"required_permission": null}))).is_ok());
    assert!(check(with(json!({"required_permission": "sales:access"}))).is_ok());
    let r = check(with(json!({"required_permission": "admin"}))).unwrap_err();
    assert_eq!(rules(&r), ["manifest.required_permission"]);
    assert!(r.error.contains("<resource>:<action>"));
}

#[test]
fn actions_need_a_slug_name_and_a_display_name_and_unique_names() {
    let r = check(with(json!({"actions": [
        {"name": "ok_one", "display_name": "Ok"},
        {"name": "bad name", "display_name": "X"},
        {"display_name": "No name"},
        {"name": "no_display"},
        {"name": "ok_one", "display_name": "Dup"},
        {"name": "perm", "display_name": "P", "required_permission": "nope"},
        "just a string"
    ]})))
    .unwrap_err();
    assert_eq!(r.status, 422);
    let messages: Vec<&str> = r.details.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("actions[1].name \"bad name\" must be a slug")),
        "{messages:#?}"
    );
    assert!(messages
        .iter()
        .any(|m| m.contains("actions[2].name is required")));
    assert!(messages
        .iter()
        .any(|m| m.contains("actions[3].display_name is required")));
    assert!(messages
        .iter()
        .any(|m| m.contains("declared twice (actions[0] and actions[4])")));
    assert!(messages
        .iter()
        .any(|m| m.contains("actions[5].required_permission")));
    assert!(messages
        .iter()
        .any(|m| m.contains("actions[6] must be an object")));
    assert_eq!(r.details.len(), 6);
    assert!(
        r.details.iter().all(|d| d.line.is_some()),
        "{:?}",
        r.details
    );
}

#[test]
fn nav_fragment_is_checked_and_its_ids_collected() {
    let ok = check(with(json!({"nav": [{
        "id": "sales:root", "label": "Sales", "icon": "bar-chart-2",
        "children": [{"id": "sales:reports", "label": "Reports", "href": "/apps/sales/", "permission": "sales:read"}]
    }]}))).unwrap();
    assert_eq!(ok.facts.nav_ids, ["sales:reports", "sales:root"]);

    let r = check(with(json!({"nav": [
        {"id": "sales:root", "label": "Sales", "icon": "Bar Chart", "href": "https://evil.example/"},
        {"id": "sales:root", "label": ""},
        {"label": "no id", "children": {"not": "an array"}}
    ]}))).unwrap_err();
    let messages: Vec<&str> = r.details.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("nav[0].icon")),
        "{messages:#?}"
    );
    assert!(messages.iter().any(|m| m.contains("nav[0].href")));
    assert!(messages.iter().any(|m| m.contains("used twice")));
    assert!(messages
        .iter()
        .any(|m| m.contains("nav[1].label must not be empty")));
    assert!(messages.iter().any(|m| m.contains("nav[2].id is required")));
    assert!(messages
        .iter()
        .any(|m| m.contains("nav[2].children must be an array")));
}

#[test]
fn permissions_are_name_and_description_and_duplicates_warn() {
    let ok = check(with(json!({"permissions": [
        {"name": "sales:read", "description": "View"},
        {"name": "sales:write"},
        {"name": "sales:read", "description": "again"}
    ]})))
    .unwrap();
    assert_eq!(ok.facts.permissions, ["sales:read", "sales:write"]);
    assert_eq!(ok.warnings.len(), 1);
    assert!(ok.warnings[0].message.contains("declared twice"));
    let r = check(with(
        json!({"permissions": [{"name": "nocolon"}, {"description": "x"}]}),
    ))
    .unwrap_err();
    assert_eq!(r.details.len(), 2);
}

#[test]
fn unknown_fields_warn_and_stay_in_the_stored_manifest() {
    let ok = check(with(
        json!({"author": "me", "actions": [{"name": "a", "display_name": "A", "colour": "red"}]}),
    ))
    .unwrap();
    let unknown: Vec<&str> = ok
        .warnings
        .iter()
        .filter(|w| w.rule == "manifest.unknown_field")
        .map(|w| w.message.as_str())
        .collect();
    assert_eq!(unknown.len(), 2, "{:?}", ok.warnings);
    assert!(unknown.iter().any(|m| m.contains("\"author\"")));
    assert!(unknown.iter().any(|m| m.contains("\"actions[0].colour\"")));
    assert_eq!(ok.manifest["author"], "me");
    assert_eq!(ok.manifest["actions"][0]["colour"], "red");
}

#[test]
fn optional_strings_and_timeout_are_typed() {
    let r = check(with(
        json!({"display_name": 3, "description": [], "timeout_s": -1}),
    ))
    .unwrap_err();
    assert_eq!(
        rules(&r),
        [
            "manifest.display_name",
            "manifest.description",
            "manifest.timeout_s"
        ]
    );
    let ok = check(with(
        json!({"display_name": "x".repeat(41), "timeout_s": 2.5}),
    ))
    .unwrap();
    assert_eq!(ok.warnings[0].rule, "manifest.display_name");
}

#[test]
fn broken_json_names_the_file_and_line_and_non_objects_are_refused() {
    let r = check_manifest(b"{\n \"app_name\": \"sales\",\n oops }", "sales").unwrap_err();
    assert_eq!(r.details[0].file.as_deref(), Some("manifest.json"));
    assert_eq!(r.details[0].line, Some(3));
    assert!(r.error.contains("not valid JSON"));
    let r = check_manifest(b"[1]", "sales").unwrap_err();
    assert!(r.error.contains("must be a JSON object"));
    // A UTF-8 byte-order mark (Notepad) is fine.
    assert!(check_manifest(
        "\u{feff}{\"app_name\":\"sales\",\"version\":\"1.0.0\"}".as_bytes(),
        "sales"
    )
    .is_ok());
}

#[test]
fn display_paths_read_like_fields() {
    assert_eq!(display_path("/actions/1/name"), "actions[1].name");
    assert_eq!(
        display_path("/nav/0/children/2/id"),
        "nav[0].children[2].id"
    );
    assert_eq!(display_path("/app_name"), "app_name");
}

#[test]
fn lucide_names_and_hrefs() {
    assert!(is_lucide_name("calendar") && is_lucide_name("bar-chart-2"));
    assert!(!is_lucide_name("Calendar") && !is_lucide_name("a--b") && !is_lucide_name("i_cal"));
    assert!(is_local_href("/apps/x/") && !is_local_href("//cdn/x") && !is_local_href("https://x"));
}

#[test]
fn the_guides_commented_template_deploys_with_a_warning_naming_the_line() {
    // The author guide's manifest template, comments and all.
    let template = r#"{
"app_name": "sales",
"display_name": "Human-Readable Title",
"version": "1.0.0",
"description": "One-line description shown in the admin UI.",
"required_permission": "", // app-level: guards execution (sync + async)
"actions": [
// {
// "name": "my_event",
// "required_permission": "" // action-level: guards subscription (empty = open)
// }
/* none yet */
]
}"#;
    let ok = check_manifest(template.as_bytes(), "sales").unwrap();
    assert_eq!(ok.app_name, "sales");
    let w = ok
        .warnings
        .iter()
        .find(|w| w.rule == "manifest.comments")
        .expect("a warning about the comments");
    assert_eq!(w.line, Some(6));
    // A "//" inside a string is text, not a comment.
    let url =
        r#"{"app_name": "sales", "version": "1.0.0", "description": "see https://example.com"}"#;
    let ok = check_manifest(url.as_bytes(), "sales").unwrap();
    assert!(!ok.warnings.iter().any(|w| w.rule == "manifest.comments"));
    // Comments do not excuse other mistakes: the JSON error is the one reported, at
    // its own line.
    let broken = "{\"app_name\": \"sales\", // c\n \"version\": \"1.0.0\",,}";
    let r = check_manifest(broken.as_bytes(), "sales").unwrap_err();
    assert!(r.error.contains("is not valid JSON"), "{}", r.error);
    assert_eq!(r.details[0].line, Some(2), "{}", r.error);
    // A block comment over several lines leaves the lines of what follows as they are.
    let block = "{\n/* one\n two\n three */\n\"app_name\": \"sales\",\n\"version\": 5\n}";
    let r = check_manifest(block.as_bytes(), "sales").unwrap_err();
    let version = r
        .details
        .iter()
        .find(|d| d.rule == "manifest.version")
        .unwrap();
    assert_eq!(version.line, Some(6), "{}", r.error);
}
