//! The deploy contract end to end, through the gateway as an author uses it: bad bundles
//! refused with the right status and message while the previous version keeps serving,
//! upload limits, warnings in the report, conflicts between apps, concurrent deploys,
//! versions, rollback and delete, and the author CLI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::time::Duration;

use common::Harness;
use nr_testkit::{manifest, zip_files};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn main_v(n: u32) -> String {
    format!("def execute(data, conn=None):\n    return {{\"v\": {n}}}\n")
}

/// A zip built entry by entry, for bundles `zip_files` cannot make.
fn raw_zip(entries: &[(&str, &[u8], Option<u32>)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body, mode) in entries {
            let o = match mode {
                Some(m) => opts.external_attributes(m << 16),
                None => opts,
            };
            w.start_file(*name, o).unwrap();
            w.write_all(body).unwrap();
        }
        w.finish().unwrap();
    }
    buf.into_inner()
}

fn symlink_zip(app: &str) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        w.start_file("manifest.json", opts).unwrap();
        w.write_all(manifest(app, "2.0.0", json!({})).as_bytes())
            .unwrap();
        w.start_file("main.py", opts).unwrap();
        w.write_all(main_v(2).as_bytes()).unwrap();
        w.add_symlink("secrets.txt", "/etc/passwd", opts).unwrap();
        w.finish().unwrap();
    }
    buf.into_inner()
}

async fn get(h: &Harness, path: &str) -> (StatusCode, Value) {
    let res = h.http.get(format!("{}{path}", h.url)).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn post_json(h: &Harness, path: &str, body: Value) -> (StatusCode, Value) {
    let res = h
        .http
        .post(format!("{}{path}", h.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn delete(h: &Harness, path: &str) -> (StatusCode, Value) {
    let res = h
        .http
        .delete(format!("{}{path}", h.url))
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn rules_of(body: &Value) -> Vec<String> {
    body["details"]
        .as_array()
        .or_else(|| body["warnings"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|d| d["rule"].as_str().map(str::to_owned))
        .collect()
}

/// A bad bundle: what it is, its file name, the zip, the status, the first finding's
/// rule and a fragment of the message.
type Case = (
    &'static str,
    String,
    Vec<u8>,
    u16,
    &'static str,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corpus_of_bad_bundles_is_refused_and_the_previous_version_keeps_serving() {
    let h = Harness::start().await;
    let app = "keep";
    let m2 = manifest(app, "2.0.0", json!({}));
    h.deploy_ok(
        app,
        &[
            ("manifest.json", &manifest(app, "1.0.0", json!({}))),
            ("main.py", &main_v(1)),
        ],
    )
    .await;
    let zeros = vec![0u8; 8 * 1024 * 1024];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut files: Vec<(String, String)> = vec![
            ("manifest.json".into(), m2.clone()),
            ("main.py".into(), main_v(2)),
        ];
        files.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
        files
    };
    let zip_of = |files: Vec<(String, String)>| {
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        zip_files(&refs)
    };
    let replace_main = |body: &str| zip_files(&[("manifest.json", &m2), ("main.py", body)]);

    // (what, file name, zip, status, rule, a fragment of the message)
    let corpus: Vec<Case> = vec![
        (
            "not a zip",
            "keep.zip".into(),
            b"PK? no".to_vec(),
            400,
            "bundle.zip",
            "not a zip archive",
        ),
        (
            "zip slip",
            "keep.zip".into(),
            zip_of(with(&[("../../evil.py", "x")])),
            422,
            "bundle.path",
            "escapes the bundle root",
        ),
        (
            "absolute path",
            "keep.zip".into(),
            zip_of(with(&[("/etc/cron.d/x", "x")])),
            422,
            "bundle.path",
            "absolute path",
        ),
        (
            "drive letter",
            "keep.zip".into(),
            zip_of(with(&[("C:/x.py", "x")])),
            422,
            "bundle.path",
            "drive letter",
        ),
        (
            "backslash",
            "keep.zip".into(),
            zip_of(with(&[("..\\evil.py", "x")])),
            422,
            "bundle.path",
            "backslashes",
        ),
        (
            "symlink",
            "keep.zip".into(),
            symlink_zip(app),
            422,
            "bundle.link",
            "symbolic link",
        ),
        (
            "named pipe",
            "keep.zip".into(),
            raw_zip(&[
                ("manifest.json", m2.as_bytes(), None),
                ("main.py", b"", None),
                ("fifo", b"", Some(0o010_644)),
            ]),
            422,
            "bundle.link",
            "named pipe",
        ),
        (
            "case collision",
            "keep.zip".into(),
            zip_of(with(&[("MAIN.py", "x")])),
            422,
            "bundle.case_collision",
            "differ only in case",
        ),
        (
            "zip bomb",
            "keep.zip".into(),
            raw_zip(&[
                ("manifest.json", m2.as_bytes(), None),
                ("main.py", main_v(2).as_bytes(), None),
                ("bomb.bin", &zeros, None),
            ]),
            413,
            "bundle.ratio",
            "zip bomb",
        ),
        (
            "wrong wrapping folder",
            "keep.zip".into(),
            zip_files(&[
                ("keep-main/manifest.json", &m2),
                ("keep-main/main.py", &main_v(2)),
            ]),
            422,
            "bundle.layout",
            "not named like the app",
        ),
        (
            "nested manifest",
            "keep.zip".into(),
            zip_files(&[("a/b/manifest.json", &m2)]),
            422,
            "bundle.layout",
            "zip -r",
        ),
        (
            "manifest not JSON",
            "keep.zip".into(),
            zip_files(&[
                ("manifest.json", "{\n\"app_name\": \"keep\",\n}"),
                ("main.py", ""),
            ]),
            422,
            "manifest.json",
            "not valid JSON",
        ),
        (
            "bad version",
            "keep.zip".into(),
            zip_files(&[
                ("manifest.json", &manifest(app, "v2", json!({}))),
                ("main.py", ""),
            ]),
            422,
            "manifest.version",
            "strict semver",
        ),
        (
            "newer api_version",
            "keep.zip".into(),
            zip_files(&[
                (
                    "manifest.json",
                    &manifest(app, "2.0.0", json!({"api_version": "1.9.0"})),
                ),
                ("main.py", ""),
            ]),
            422,
            "manifest.api_version",
            "newer platform",
        ),
        (
            "other major api_version",
            "keep.zip".into(),
            zip_files(&[
                (
                    "manifest.json",
                    &manifest(app, "2.0.0", json!({"api_version": "2.0.0"})),
                ),
                ("main.py", ""),
            ]),
            422,
            "manifest.api_version",
            "major",
        ),
        (
            "duplicate action",
            "keep.zip".into(),
            zip_files(&[
                (
                    "manifest.json",
                    &manifest(
                        app,
                        "2.0.0",
                        json!({"actions": [{"name": "a", "display_name": "A"}, {"name": "a", "display_name": "B"}]}),
                    ),
                ),
                ("main.py", ""),
            ]),
            422,
            "manifest.actions",
            "declared twice",
        ),
        (
            "bad permission",
            "keep.zip".into(),
            zip_files(&[
                (
                    "manifest.json",
                    &manifest(app, "2.0.0", json!({"required_permission": "everyone"})),
                ),
                ("main.py", ""),
            ]),
            422,
            "manifest.required_permission",
            "<resource>:<action>",
        ),
        (
            "name differs from zip",
            "other.zip".into(),
            zip_files(&[("manifest.json", &m2), ("main.py", &main_v(2))]),
            422,
            "manifest.app_name",
            "does not match the bundle name",
        ),
        (
            "no main.py",
            "keep.zip".into(),
            zip_files(&[("manifest.json", &m2)]),
            422,
            "bundle.main_py",
            "main.py is missing",
        ),
        (
            "syntax error",
            "keep.zip".into(),
            replace_main("def execute(data):\n    return {'v': 2\n"),
            422,
            "main.syntax",
            "does not compile",
        ),
        (
            "import error",
            "keep.zip".into(),
            replace_main("import numpy_that_is_not_here\n\ndef execute(data):\n    return {}\n"),
            422,
            "main.import",
            "ModuleNotFoundError",
        ),
        (
            "module code raises",
            "keep.zip".into(),
            replace_main("raise RuntimeError('migration failed')\n"),
            422,
            "main.import",
            "RuntimeError: migration failed",
        ),
        (
            "missing execute",
            "keep.zip".into(),
            replace_main("def run(data):\n    return {}\n"),
            422,
            "main.execute",
            "does not define execute",
        ),
        (
            "execute takes no data",
            "keep.zip".into(),
            replace_main("def execute():\n    return {}\n"),
            422,
            "main.execute",
            "cannot be called as execute(data)",
        ),
    ];
    for (what, file_name, zip, status, rule, fragment) in corpus {
        let (got, body) = h.deploy(&file_name, zip).await;
        assert_eq!(got.as_u16(), status, "{what}: {body:#}");
        assert_eq!(body["code"], "refused", "{what}: {body:#}");
        assert_eq!(
            rules_of(&body).first().map(String::as_str),
            Some(rule),
            "{what}: {body:#}"
        );
        let text = format!("{} {}", body["error"], body["details"]);
        assert!(
            text.contains(fragment),
            "{what}: {fragment:?} not in {body:#}"
        );
        let (s, served) = h.sync(app, json!({})).await;
        assert_eq!(
            (s, served["v"].as_u64()),
            (StatusCode::OK, Some(1)),
            "{what} changed what is served"
        );
    }
    // The import error's traceback and line reach the author.
    let (_, body) = h
        .deploy("keep.zip", replace_main("import os\nimport missing_mod\n"))
        .await;
    assert_eq!(body["details"][0]["file"], "main.py");
    assert_eq!(body["details"][0]["line"], 2);
    assert!(
        body["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Traceback"),
        "{body:#}"
    );

    // Nothing refused became a version.
    let (status, versions) = get(&h, &format!("/admin/api/apps/{app}/versions")).await;
    assert_eq!(status, StatusCode::OK, "{versions}");
    let listed: Vec<&str> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["1.0.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_bundles_over_the_limits_are_413() {
    let h =
        Harness::start_with(&["--max-bundle-bytes", "20000", "--max-bundle-entries", "8"]).await;
    // Random letters compress to ~60%: about 36 kB of zip, over 20000 bytes.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let noise: String = (0..60_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    // Over the limit but inside the multipart allowance: the gateway counts it.
    let (status, body) = h
        .deploy(
            "big.zip",
            zip_files(&[("manifest.json", "{}"), ("noise.txt", &noise)]),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // The limit and the setting that raises it are named.
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("20000 bytes (NR_MAX_BUNDLE_BYTES"),
        "{body}"
    );
    // Far over: the multipart reader stops it.
    let (status, body) = h.deploy("big.zip", vec![b'x'; 300 * 1024]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    // The zip sent as the body itself, not as a form: the answer says how to send it.
    let r = h
        .http
        .post(format!("{}/admin/api/apps/deploy", h.url))
        .header("content-type", "application/zip")
        .body(zip_files(&[("manifest.json", "{}")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("multipart/form-data with the zip in the field `file`"),
        "{body}"
    );
    // Too many entries.
    let names: Vec<String> = (0..10).map(|i| format!("f{i}.txt")).collect();
    let mut files = vec![
        (
            "manifest.json",
            "{\"app_name\":\"many\",\"version\":\"1.0.0\"}",
        ),
        ("main.py", "def execute(d):\n    return {}\n"),
    ];
    files.extend(names.iter().map(|n| (n.as_str(), "")));
    let (status, body) = h.deploy("many.zip", zip_files(&files)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(rules_of(&body), ["bundle.entries"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_come_back_in_the_report_and_unknown_fields_are_kept() {
    let h = Harness::start().await;
    let app = "warned";
    let report = h
        .deploy_ok(
            app,
            &[
                ("manifest.json", &manifest(app, "1.0.0", json!({"x_owner": "team-a", "display_name": "Warned"}))),
                ("main.py", &main_v(1)),
                ("index.html", "<div class=\"wa-root\">\n  <button onclick=\"go()\">Go</button>\n</div>\n<script src=\"https://cdn.example.com/chart.js\"></script>\n"),
                ("index.js", "function go() {}\nAdminWS.subscribe('x');\n"),
                ("style.css", ".wa-root { color: #ffffff; }\n.card { padding: 1px; }\nbody { margin: 0; }\n"),
            ],
        )
        .await;
    let warnings = report["warnings"].as_array().unwrap();
    let find = |rule: &str| {
        warnings
            .iter()
            .find(|w| w["rule"] == rule)
            .unwrap_or_else(|| panic!("no {rule} warning in {report:#}"))
    };
    assert_eq!(find("manifest.api_version")["file"], "manifest.json");
    assert!(find("manifest.unknown_field")["message"]
        .as_str()
        .unwrap()
        .contains("x_owner"));
    assert_eq!(
        (
            find("frontend.inline_handler")["file"].as_str(),
            find("frontend.inline_handler")["line"].as_u64()
        ),
        (Some("index.html"), Some(2))
    );
    assert_eq!(find("frontend.external_url")["line"], 4);
    assert_eq!(find("frontend.iife")["file"], "index.js");
    assert_eq!(find("frontend.hex_color")["line"], 1);
    assert_eq!(find("frontend.css_prefix")["line"], 2);
    assert_eq!(find("frontend.global_selector")["line"], 3);
    assert_eq!(find("frontend.adminws_module_scope")["line"], 2);

    // The stored manifest keeps the unknown field.
    let js = async_nats::jetstream::new(h.nats_client().await);
    let stream = js.get_stream("NR_APPS").await.unwrap();
    let msg = stream
        .get_last_raw_message_by_subject(&format!("app.updated.{app}"))
        .await
        .unwrap();
    let event: Value = rmp_serde_generic(&msg.payload);
    assert_eq!(event["data"]["manifest"]["x_owner"], "team-a");
    // And the app serves.
    assert_eq!(h.sync(app, json!({})).await.1["v"], 1);
}

fn rmp_serde_generic(bytes: &[u8]) -> Value {
    nr_contracts::decode(bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapping_folder_named_like_the_app_deploys_with_a_warning_and_serves() {
    let h = Harness::start().await;
    let (status, body) = h
        .deploy(
            "wrapped.zip",
            zip_files(&[
                (
                    "wrapped/manifest.json",
                    &manifest("wrapped", "1.0.0", json!({"api_version": "1.0.0"})),
                ),
                ("wrapped/main.py", &main_v(7)),
                ("__MACOSX/wrapped/._main.py", "junk"),
                ("wrapped/.DS_Store", "junk"),
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(rules_of(&body), ["bundle.layout"]);
    assert_eq!(h.sync("wrapped", json!({})).await.1["v"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_between_apps_are_refused_naming_both_apps() {
    let h = Harness::start().await;
    let nav =
        |id: &str| json!([{"id": id, "label": "Menu", "icon": "calendar", "href": "/apps/x/"}]);
    h.deploy_ok(
        "crm",
        &[
            ("manifest.json", &manifest("crm", "1.0.0", json!({"nav": nav("shared:menu"), "permissions": [{"name": "reports:read", "description": "Read reports"}]}))),
            ("main.py", &main_v(1)),
        ],
    )
    .await;
    // Right after: the catalogue deploy checks against has seen crm.
    let (status, body) = h
        .deploy(
            "sales.zip",
            zip_files(&[
                (
                    "manifest.json",
                    &manifest("sales", "1.0.0", json!({"nav": nav("shared:menu")})),
                ),
                ("main.py", &main_v(1)),
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(rules_of(&body), ["conflict.nav_id"]);
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("\"sales\"") && msg.contains("\"crm\"") && msg.contains("shared:menu"),
        "{msg}"
    );

    let report = h
        .deploy_ok("sales", &[("manifest.json", &manifest("sales", "1.0.0", json!({"nav": nav("sales:menu"), "permissions": [{"name": "reports:read"}]}))), ("main.py", &main_v(1))])
        .await;
    assert!(
        rules_of(&report).contains(&"conflict.permission".to_owned()),
        "{report:#}"
    );

    let (status, body) = h
        .deploy(
            "CRM.zip",
            zip_files(&[
                ("manifest.json", &manifest("CRM", "1.0.0", json!({}))),
                ("main.py", &main_v(1)),
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(rules_of(&body), ["conflict.app_name"]);

    // Once crm is deleted its nav id and its name (in any case) are free.
    assert_eq!(delete(&h, "/admin/api/apps/crm").await.0, StatusCode::OK);
    let (status, body) = h
        .deploy(
            "CRM.zip",
            zip_files(&[
                (
                    "manifest.json",
                    &manifest("CRM", "1.0.0", json!({"nav": nav("shared:menu")})),
                ),
                ("main.py", &main_v(9)),
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.sync("CRM", json!({})).await.1["v"], 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_deploys_of_one_app_one_wins_and_the_other_gets_409() {
    let h = Harness::start().await;
    let app = "race";
    // The import check sleeps, so both deploys are being checked at the same time.
    let bundle = |n: u32| {
        zip_files(&[
            ("manifest.json", &manifest(app, &format!("1.0.{n}"), json!({}))),
            ("main.py", &format!("import time\ntime.sleep(1.5)\n\ndef execute(data):\n    return {{\"v\": {n}}}\n")),
        ])
    };
    let (a, b) = tokio::join!(
        h.deploy("race.zip", bundle(1)),
        h.deploy("race.zip", bundle(2))
    );
    let mut statuses = [a.0.as_u16(), b.0.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    let (winner, loser) = if a.0 == StatusCode::OK {
        (a.1, b.1)
    } else {
        (b.1, a.1)
    };
    assert_eq!(rules_of(&loser), ["conflict.concurrent"], "{loser}");
    assert!(
        loser["error"].as_str().unwrap().contains("another change"),
        "{loser}"
    );
    let v = if winner["version"] == "1.0.1" { 1 } else { 2 };
    assert_eq!(h.sync(app, json!({})).await.1["v"], v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeploying_the_same_zip_reloads_it() {
    let h = Harness::start().await;
    let zip = zip_files(&[("manifest.json", &manifest("again", "1.0.0", json!({}))), ("main.py", "import time\nLOADED = time.time()\n\ndef execute(data):\n    return {'loaded': LOADED}\n")]);
    let (s1, first) = h.deploy("again.zip", zip.clone()).await;
    let t1 = h.sync("again", json!({})).await.1["loaded"]
        .as_f64()
        .unwrap();
    let (s2, second) = h.deploy("again.zip", zip).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(first["sha256"], second["sha256"]);
    assert!(second["rev"].as_u64() > first["rev"].as_u64());
    assert_eq!(second["previous_version"], "1.0.0");
    let t2 = h.sync("again", json!({})).await.1["loaded"]
        .as_f64()
        .unwrap();
    assert!(
        t2 > t1,
        "the module was not imported again ({t1} then {t2})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_rollback_and_delete_work_end_to_end() {
    let h = Harness::start().await;
    let app = "ledger";
    let one = h
        .deploy_ok(
            app,
            &[
                ("manifest.json", &manifest(app, "1.0.0", json!({}))),
                ("main.py", &main_v(1)),
            ],
        )
        .await;
    assert_eq!(one["previous_version"], Value::Null);
    let two = h
        .deploy_ok(
            app,
            &[
                ("manifest.json", &manifest(app, "1.1.0", json!({}))),
                ("main.py", &main_v(2)),
            ],
        )
        .await;
    assert_eq!(two["previous_version"], "1.0.0");

    let (status, v) = get(&h, &format!("/admin/api/apps/{app}/versions")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["current_version"], "1.1.0");
    let versions = v["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        (
            versions[0]["version"].as_str(),
            versions[0]["current"].as_bool()
        ),
        (Some("1.1.0"), Some(true))
    );
    assert_eq!(
        (
            versions[1]["version"].as_str(),
            versions[1]["current"].as_bool()
        ),
        (Some("1.0.0"), Some(false))
    );
    assert_eq!(versions[1]["sha256"], one["sha256"]);

    // Roll back: served at once, and listed as current.
    let (status, r) = post_json(
        &h,
        &format!("/admin/api/apps/{app}/rollback"),
        json!({"version": "1.0.0"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        (r["version"].as_str(), r["previous_version"].as_str()),
        (Some("1.0.0"), Some("1.1.0"))
    );
    assert_eq!(r["sha256"], one["sha256"]);
    assert_eq!(h.sync(app, json!({})).await.1["v"], 1);
    let (_, v) = get(&h, &format!("/admin/api/apps/{app}/versions")).await;
    assert_eq!(v["current_version"], "1.0.0");
    assert_eq!(v["versions"][1]["current"], true);

    // Unknown version, bad body, unknown app.
    let (status, r) = post_json(
        &h,
        &format!("/admin/api/apps/{app}/rollback"),
        json!({"version": "9.9.9"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{r}");
    // Each version named once, though 1.0.0 became current twice (before: "1.0.0,
    // 1.1.0, 1.0.0").
    let (_, listed) = r["error"]
        .as_str()
        .unwrap()
        .split_once("its versions are: ")
        .unwrap();
    let mut listed: Vec<&str> = listed.split(", ").collect();
    listed.sort();
    assert_eq!(listed, ["1.0.0", "1.1.0"], "{r}");
    let (status, r) = post_json(
        &h,
        &format!("/admin/api/apps/{app}/rollback"),
        json!({"ver": "1.0.0"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
    assert!(r["error"].as_str().unwrap().contains("\"version\""), "{r}");
    assert_eq!(
        post_json(
            &h,
            "/admin/api/apps/nope/rollback",
            json!({"version": "1.0.0"})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&h, "/admin/api/apps/nope/versions").await.0,
        StatusCode::NOT_FOUND
    );

    // Delete: no longer served or listed; versions kept.
    let (status, d) = delete(&h, &format!("/admin/api/apps/{app}")).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["version"], "1.0.0");
    assert_eq!(h.sync(app, json!({})).await.0, StatusCode::NOT_FOUND);
    let (_, v) = get(&h, &format!("/admin/api/apps/{app}/versions")).await;
    assert_eq!(
        (v["deleted"].as_bool(), v["current_version"].as_str()),
        (Some(true), None),
        "{v}"
    );
    assert_eq!(v["versions"].as_array().unwrap().len(), 2);
    let (_, list) = get(&h, "/admin/api/apps").await;
    assert!(
        list["apps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["app_name"] != app),
        "{list}"
    );
    assert_eq!(
        delete(&h, &format!("/admin/api/apps/{app}")).await.0,
        StatusCode::NOT_FOUND
    );

    // A rollback restores a deleted app.
    let (status, r) = post_json(
        &h,
        &format!("/admin/api/apps/{app}/rollback"),
        json!({"version": "1.1.0"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["previous_version"], Value::Null);
    assert_eq!(h.sync(app, json!({})).await.1["v"], 2);

    // An app may be named like the deploy endpoint.
    h.deploy_ok(
        "deploy",
        &[
            ("manifest.json", &manifest("deploy", "1.0.0", json!({}))),
            ("main.py", &main_v(3)),
        ],
    )
    .await;
    assert_eq!(
        get(&h, "/admin/api/apps/deploy/versions").await.0,
        StatusCode::OK
    );
    assert_eq!(delete(&h, "/admin/api/apps/deploy").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(h.sync("deploy", json!({})).await.0, StatusCode::NOT_FOUND);
}

/// The admin token the CLI authenticates with (`NR_TOKEN`).
static CLI_TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_noderouter"))
        .args(args)
        .env(
            "NR_TOKEN",
            CLI_TOKEN.get().map(String::as_str).unwrap_or(""),
        )
        .env("NR_PYTHON", nr_testkit::python())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_author_cli_scaffolds_lints_packs_deploys_and_rolls_back() {
    let h = Harness::start().await;
    let _ = CLI_TOKEN.set(h.platform.as_ref().unwrap().admin_token().to_owned());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let app_dir = format!("{d}/app_hello_cli");

    let o = cli(&["app", "new", "app_hello_cli", "--dir", d]);
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(&["app", "lint", &app_dir]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("app_hello_cli 1.0.0: passes every check (0 warnings)"),
        "{}",
        text(&o)
    );

    let o = cli(&["app", "pack", &app_dir]);
    assert!(o.status.success(), "{}", text(&o));
    let zip = format!("{d}/app_hello_cli.zip");
    let o = cli(&["app", "lint", &zip, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let linted: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(linted["app_name"], "app_hello_cli");

    let o = cli(&["app", "deploy", &app_dir, "--url", &h.url]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("deployed app_hello_cli 1.0.0 (new app)"),
        "{}",
        text(&o)
    );
    let (status, body) = h.sync("app_hello_cli", json!({})).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::OK, Some("ok")),
        "{body}"
    );

    // A second version with a frontend warning, then a broken one.
    let manifest_path = format!("{app_dir}/manifest.json");
    let m = std::fs::read_to_string(&manifest_path)
        .unwrap()
        .replace("\"1.0.0\",\n  \"api", "\"1.1.0\",\n  \"api");
    std::fs::write(&manifest_path, m).unwrap();
    std::fs::write(format!("{app_dir}/style.css"), "body { color: #000; }\n").unwrap();
    let o = cli(&["app", "lint", &app_dir]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("warning[frontend.global_selector] style.css:1:"),
        "{}",
        text(&o)
    );
    let o = cli(&["app", "deploy", &app_dir, "--url", &h.url, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (
            report["version"].as_str(),
            report["previous_version"].as_str()
        ),
        (Some("1.1.0"), Some("1.0.0"))
    );

    std::fs::write(
        format!("{app_dir}/main.py"),
        "import not_installed_anywhere\n",
    )
    .unwrap();
    let o = cli(&["app", "lint", &app_dir]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o)
            .contains("error[main.import] main.py:1: main.py fails on import: ModuleNotFoundError"),
        "{}",
        text(&o)
    );
    let o = cli(&["app", "deploy", &app_dir, "--url", &h.url]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("deploy refused (422 Unprocessable Entity)"),
        "{}",
        text(&o)
    );

    let o = cli(&["app", "versions", "app_hello_cli", "--url", &h.url]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("* 1.1.0"), "{}", text(&o));
    let o = cli(&["app", "rollback", "app_hello_cli", "1.0.0", "--url", &h.url]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("at 1.0.0 again (was 1.1.0)"),
        "{}",
        text(&o)
    );
    let o = cli(&["app", "delete", "app_hello_cli", "--url", &h.url]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        h.sync("app_hello_cli", json!({})).await.0,
        StatusCode::NOT_FOUND
    );
}
