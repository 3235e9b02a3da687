//! Bad bundles, through the gateway as an author deploys them: a corpus of broken zips,
//! each refused with the right status, rule and message while the previous version keeps
//! serving, and none of them listed as a version.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;

use common::deploy::{get, main_v, rules_of};
use common::Harness;
use nr_testkit::{manifest, zip_files};
use reqwest::StatusCode;
use serde_json::json;

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

/// The `rule`s of a body's `warnings`.
fn warning_rules(body: &serde_json::Value) -> Vec<String> {
    body["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|f| f["rule"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_deploy_also_names_what_it_would_have_warned_of() {
    let h = Harness::start().await;
    let app = "typo";
    // A misspelt optional field is a warning; the refusal is for something else.
    let m = manifest(app, "1.0.0", json!({"api_version": "1.0.0", "timout_s": 5}));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "main.py missing",
            zip_files(&[("manifest.json", &m)]),
            422,
            "bundle.main_py",
        ),
        (
            "import error",
            zip_files(&[("manifest.json", &m), ("main.py", "import missing_mod\n")]),
            422,
            "main.import",
        ),
        (
            "a manifest error beside it",
            zip_files(&[
                (
                    "manifest.json",
                    &manifest(
                        app,
                        "1.0.0",
                        json!({"api_version": "1.0.0", "timout_s": 5, "timeout_s": "600"}),
                    ),
                ),
                ("main.py", &main_v(1)),
            ]),
            422,
            "manifest.timeout_s",
        ),
    ];
    for (what, zip, status, rule) in cases {
        let (got, body) = h.deploy("typo.zip", zip).await;
        assert_eq!(got.as_u16(), status, "{what}: {body:#}");
        assert_eq!(
            rules_of(&body).first().map(String::as_str),
            Some(rule),
            "{what}: {body:#}"
        );
        assert_eq!(
            warning_rules(&body),
            ["manifest.unknown_field"],
            "{what}: {body:#}"
        );
        let w = &body["warnings"][0];
        assert_eq!(w["file"], "manifest.json", "{what}: {body:#}");
        assert!(w["line"].as_u64().is_some(), "{what}: {body:#}");
        assert!(
            w["message"].as_str().unwrap().contains("timout_s"),
            "{what}: {body:#}"
        );
    }
    // A refusal with nothing to warn of carries no warnings at all.
    let clean = manifest(app, "1.0.0", json!({"api_version": "1.0.0"}));
    let (got, body) = h
        .deploy("typo.zip", zip_files(&[("manifest.json", &clean)]))
        .await;
    assert_eq!(got.as_u16(), 422, "{body:#}");
    assert!(body.get("warnings").is_none(), "{body:#}");
    // And the same bundle, mended, deploys with its warning.
    let (got, body) = h
        .deploy(
            "typo.zip",
            zip_files(&[("manifest.json", &m), ("main.py", &main_v(1))]),
        )
        .await;
    assert_eq!(got.as_u16(), 200, "{body:#}");
    assert_eq!(warning_rules(&body), ["manifest.unknown_field"], "{body:#}");
}
