//! Reads a bundle zip and applies the deploy checks. Pure: bytes in, verdict out.

use std::io::{Cursor, Read};

use nr_contracts::requests::Finding;

/// A bundle that passed the checks.
#[derive(Debug)]
pub struct Checked {
    pub app_name: String,
    pub version: String,
    pub manifest: serde_json::Value,
    pub warnings: Vec<Finding>,
}

/// A refusal: the HTTP status that fits, a summary, and every finding.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub error: String,
    pub details: Vec<Finding>,
}

fn finding(rule: &str, file: Option<&str>, line: Option<u32>, message: String) -> Finding {
    Finding {
        rule: rule.to_owned(),
        file: file.map(str::to_owned),
        line,
        message,
    }
}

fn refuse(
    status: u16,
    rule: &str,
    file: Option<&str>,
    line: Option<u32>,
    message: String,
) -> Refused {
    Refused {
        status,
        error: message.clone(),
        details: vec![finding(rule, file, line, message)],
    }
}

pub fn is_valid_app_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
}

/// The bundle's name from the uploaded file name: `notes.zip` → `notes`.
pub fn bundle_name(file_name: &str) -> &str {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    base.strip_suffix(".zip")
        .or_else(|| base.strip_suffix(".ZIP"))
        .unwrap_or(base)
}

/// Files of a bundle, keyed by their path relative to the bundle root.
struct Files {
    root: String,
    entries: Vec<String>,
}

fn read_entry(
    zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>, Refused> {
    let mut entry = zip.by_name(name).map_err(|e| {
        refuse(
            400,
            "bundle.read",
            Some(name),
            None,
            format!("cannot read {name}: {e}"),
        )
    })?;
    let mut out = Vec::new();
    (&mut entry)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            refuse(
                400,
                "bundle.read",
                Some(name),
                None,
                format!("cannot inflate {name}: {e}"),
            )
        })?;
    if out.len() as u64 > limit {
        return Err(refuse(
            413,
            "bundle.entry_size",
            Some(name),
            None,
            format!("{name} is larger than {limit} bytes once inflated"),
        ));
    }
    Ok(out)
}

fn layout(zip: &zip::ZipArchive<Cursor<&[u8]>>) -> Result<Files, Refused> {
    let entries: Vec<String> = zip
        .file_names()
        .filter_map(Result::ok)
        .map(|n| n.into_owned())
        .filter(|n| !n.starts_with("__MACOSX/") && !n.ends_with(".DS_Store"))
        .collect();
    if entries.iter().any(|n| n == "manifest.json") {
        return Ok(Files {
            root: String::new(),
            entries,
        });
    }
    let tops: std::collections::BTreeSet<String> = entries
        .iter()
        .filter_map(|n| n.split('/').next())
        .map(str::to_owned)
        .collect();
    if let (1, Some(top)) = (tops.len(), tops.first()) {
        let root = format!("{top}/");
        let manifest = format!("{root}manifest.json");
        if entries.contains(&manifest) {
            return Ok(Files { root, entries });
        }
    }
    Err(refuse(
        422,
        "bundle.layout",
        None,
        None,
        "manifest.json is missing at the root of the zip: zip the contents of the app folder, not the folder (cd my_app && zip -r ../my_app.zip .)".into(),
    ))
}

/// Checks a bundle and returns its manifest, or why it is refused.
pub fn check(bytes: &[u8], file_name: &str) -> Result<Checked, Refused> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        refuse(
            400,
            "bundle.zip",
            Some(file_name),
            None,
            format!("the upload is not a readable zip archive: {e}"),
        )
    })?;
    let files = layout(&zip)?;
    let mut warnings = Vec::new();
    if !files.root.is_empty() {
        warnings.push(finding(
            "bundle.layout",
            None,
            None,
            format!(
                "files are inside a wrapping folder '{}'; accepted, but zip the folder's contents so files sit at the root",
                files.root.trim_end_matches('/')
            ),
        ));
    }
    let manifest_path = format!("{}manifest.json", files.root);
    let raw = read_entry(&mut zip, &manifest_path, 1024 * 1024)?;
    let manifest: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| {
        refuse(
            422,
            "manifest.json",
            Some("manifest.json"),
            Some(e.line() as u32),
            format!("manifest.json is not valid JSON: {e}"),
        )
    })?;
    let Some(obj) = manifest.as_object() else {
        return Err(refuse(
            422,
            "manifest.json",
            Some("manifest.json"),
            Some(1),
            "manifest.json must be a JSON object".into(),
        ));
    };
    let app_name = match obj.get("app_name") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(refuse(
                422,
                "manifest.app_name",
                Some("manifest.json"),
                None,
                "app_name must be a string".into(),
            ))
        }
        None => {
            return Err(refuse(
                422,
                "manifest.app_name",
                Some("manifest.json"),
                None,
                "app_name is required".into(),
            ))
        }
    };
    if !is_valid_app_name(&app_name) {
        return Err(refuse(
            422,
            "manifest.app_name",
            Some("manifest.json"),
            None,
            format!("app_name {app_name:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_-]{{0,63}}$ (letters, digits, _ and -, starting with a letter or digit, at most 64 characters)"),
        ));
    }
    let expected = bundle_name(file_name);
    if expected != app_name {
        return Err(refuse(
            422,
            "manifest.app_name",
            Some("manifest.json"),
            None,
            format!("app_name {app_name:?} does not match the bundle name {expected:?}: name the zip {app_name}.zip"),
        ));
    }
    let version = match obj.get("version") {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => {
            return Err(refuse(
                422,
                "manifest.version",
                Some("manifest.json"),
                None,
                "version is required, a semver string such as \"1.0.0\"".into(),
            ))
        }
    };
    let main_path = format!("{}main.py", files.root);
    if !files.entries.iter().any(|n| *n == main_path) {
        return Err(refuse(
            422,
            "bundle.main_py",
            Some("main.py"),
            None,
            "main.py is missing: every app needs main.py defining execute(data, conn=None)".into(),
        ));
    }
    Ok(Checked {
        app_name,
        version,
        manifest,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            for (name, body) in files {
                w.start_file(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                w.write_all(body.as_bytes()).unwrap();
            }
            w.finish().unwrap();
        }
        buf.into_inner()
    }

    const MANIFEST: &str = r#"{"app_name":"notes","version":"1.0.0"}"#;

    #[test]
    fn a_guide_bundle_passes() {
        let z = zip_of(&[
            ("manifest.json", MANIFEST),
            ("main.py", "def execute(data, conn=None):\n    return {}\n"),
        ]);
        let c = check(&z, "notes.zip").unwrap();
        assert_eq!(c.app_name, "notes");
        assert_eq!(c.version, "1.0.0");
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn a_wrapping_folder_named_like_the_app_is_accepted_with_a_warning() {
        let z = zip_of(&[("notes/manifest.json", MANIFEST), ("notes/main.py", "")]);
        let c = check(&z, "notes.zip").unwrap();
        assert_eq!(c.warnings[0].rule, "bundle.layout");
    }

    #[test]
    fn missing_manifest_is_refused_with_how_to_zip() {
        let z = zip_of(&[("main.py", "")]);
        let r = check(&z, "notes.zip").unwrap_err();
        assert_eq!(r.status, 422);
        assert!(r.error.contains("zip -r"), "{}", r.error);
    }

    #[test]
    fn broken_manifest_json_names_the_file_and_line() {
        let z = zip_of(&[
            ("manifest.json", "{\n \"app_name\": \"notes\",\n oops }"),
            ("main.py", ""),
        ]);
        let r = check(&z, "notes.zip").unwrap_err();
        assert_eq!(r.details[0].file.as_deref(), Some("manifest.json"));
        assert_eq!(r.details[0].line, Some(3));
    }

    #[test]
    fn invalid_or_mismatched_app_names_are_refused() {
        let bad = zip_of(&[
            ("manifest.json", r#"{"app_name":"-x","version":"1.0.0"}"#),
            ("main.py", ""),
        ]);
        assert!(check(&bad, "-x.zip")
            .unwrap_err()
            .error
            .contains("must match"));
        let other = zip_of(&[("manifest.json", MANIFEST), ("main.py", "")]);
        assert!(check(&other, "todo.zip")
            .unwrap_err()
            .error
            .contains("does not match the bundle name"));
    }

    #[test]
    fn missing_main_py_is_refused() {
        let z = zip_of(&[("manifest.json", MANIFEST)]);
        assert_eq!(
            check(&z, "notes.zip").unwrap_err().details[0].rule,
            "bundle.main_py"
        );
    }

    #[test]
    fn not_a_zip_is_a_400() {
        assert_eq!(check(b"hello", "notes.zip").unwrap_err().status, 400);
    }

    #[test]
    fn app_name_pattern() {
        assert!(is_valid_app_name("app_sales-1"));
        assert!(is_valid_app_name(&"a".repeat(64)));
        assert!(!is_valid_app_name(&"a".repeat(65)));
        for bad in ["", "_x", "a b", "a.b", "é"] {
            assert!(!is_valid_app_name(bad), "{bad}");
        }
    }

    #[test]
    fn bundle_name_strips_directories_and_extension() {
        assert_eq!(bundle_name("C:\\tmp\\notes.zip"), "notes");
        assert_eq!(bundle_name("/a/notes.zip"), "notes");
        assert_eq!(bundle_name("notes"), "notes");
    }
}
