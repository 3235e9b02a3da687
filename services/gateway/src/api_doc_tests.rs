//! `docs/api.md` and the OpenAPI document agree: the reference section of the doc
//! (between `<!-- openapi:begin -->` and `<!-- openapi:end -->`) is generated from the
//! document, and every endpoint the prose names (`` `GET /admin/api/apps` ``) exists in
//! it. After changing an endpoint: `NR_UPDATE_API_DOC=1 cargo test -p nr-gateway --lib
//! api_doc` rewrites the section.

use serde_json::Value;
use utoipa::OpenApi;

const BEGIN: &str = "<!-- openapi:begin -->";
const END: &str = "<!-- openapi:end -->";
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];
/// Served outside the API document: ops endpoints and the WebSocket upgrade.
const OUTSIDE: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/api/ws/notify"];
/// Documented endpoints the OpenAPI document does not describe yet. Each is a gap to
/// close by adding its `#[utoipa::path]` to `openapi.rs`, then its line here goes.
const NOT_YET_IN_OPENAPI: [&str; 0] = [];

fn document() -> Value {
    serde_json::to_value(crate::openapi::ApiDoc::openapi()).unwrap_or(Value::Null)
}

fn reference(doc: &Value) -> String {
    let mut out = String::from("| endpoint | what it does |\n|---|---|\n");
    let Some(paths) = doc["paths"].as_object() else {
        return out;
    };
    let mut names: Vec<&String> = paths.keys().collect();
    names.sort();
    for path in names {
        for m in METHODS {
            let op = &paths[path][m];
            if op.is_object() {
                let summary = summary_of(op);
                out.push_str(&format!(
                    "| `{} {}` | {} |\n",
                    m.to_uppercase(),
                    path,
                    summary.trim()
                ));
            }
        }
    }
    out
}

/// The first sentence of an operation's text, without the endpoint it often opens
/// with (`` `GET /x`: ``).
fn summary_of(op: &Value) -> String {
    let text = [op["summary"].as_str(), op["description"].as_str()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut rest = text.as_str();
    if let Some(after) = rest.strip_prefix('`').and_then(|r| r.split_once('`')) {
        rest = after.1.trim_start_matches([':', ',']).trim_start();
    }
    let sentence = rest.split(". ").next().unwrap_or("").trim_end_matches('.');
    let mut out = sentence.replace('|', "\\|");
    if let Some(first) = out.get(..1) {
        out = first.to_uppercase() + out.get(1..).unwrap_or("");
    }
    if out.is_empty() {
        out.push('—');
    }
    out
}

fn doc_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md")
}

#[test]
fn the_reference_section_is_generated_from_the_openapi_document() {
    let doc = document();
    let text = std::fs::read_to_string(doc_path()).unwrap_or_default();
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        panic!("docs/api.md lacks the {BEGIN} … {END} section");
    };
    let want = reference(&doc);
    let have = text[b + BEGIN.len()..e].trim_start_matches('\n');
    if have != want {
        if std::env::var("NR_UPDATE_API_DOC").is_ok_and(|v| v == "1") {
            let new = format!("{}{BEGIN}\n{want}{}", &text[..b], &text[e..]);
            std::fs::write(doc_path(), new).unwrap_or_default();
        } else {
            panic!(
                "docs/api.md's reference section differs from /api/openapi.json; run NR_UPDATE_API_DOC=1 cargo test -p nr-gateway --lib api_doc\n--- expected ---\n{want}"
            );
        }
    }
}

#[test]
fn every_endpoint_the_doc_names_is_in_the_openapi_document() {
    let doc = document();
    let text = std::fs::read_to_string(doc_path()).unwrap_or_default();
    let mut missing = Vec::new();
    for piece in text.split('`').skip(1).step_by(2) {
        let Some((method, path)) = piece.split_once(' ') else {
            continue;
        };
        let m = method.to_ascii_lowercase();
        if !METHODS.contains(&m.as_str()) || !path.starts_with('/') || path.contains(' ') {
            continue;
        }
        // `<app>` in prose is `{app}` in the document; a query string is not a path.
        let path: String = path
            .split(['?', '['])
            .next()
            .unwrap_or("")
            .replace('<', "{")
            .replace('>', "}");
        if OUTSIDE.contains(&path.as_str()) {
            continue;
        }
        let named = format!("{method} {path}");
        if !doc["paths"][&path][&m].is_object() && !NOT_YET_IN_OPENAPI.contains(&named.as_str()) {
            missing.push(named);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/api.md names endpoints the OpenAPI document lacks: {missing:?}"
    );
}
