//! How a bundle zip's entries become an app's files: one set of rules for deploy, which
//! checks the files, the runner, which runs them, and the gateway, which serves them.
//! Were they to differ, a bundle could pass deploy's checks with one set of files and
//! run or serve another (a `__MACOSX/manifest.json` ahead of the real root, say).

/// The largest public file (a page, script, style or image) the gateway serves.
pub const MAX_PUBLIC_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// The most bytes of public files one bundle may hold: the gateway keeps them in
/// memory while the app's page is in use.
pub const MAX_PUBLIC_BYTES: u64 = 64 * 1024 * 1024;

/// Entries the platform ignores: macOS metadata that Finder adds to every zip.
pub fn is_ignored(name: &str) -> bool {
    name.starts_with("__MACOSX/")
        || name == "__MACOSX"
        || name.trim_end_matches('/').rsplit('/').next() == Some(".DS_Store")
}

/// The folder the app's files are in, given every entry name of the zip: `""` when
/// `manifest.json` is at the top, `"<folder>/"` when every entry the platform does not
/// ignore is under one folder holding `manifest.json`, `None` otherwise (deploy refuses
/// such a zip).
pub fn root<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let kept: Vec<&str> = names.into_iter().filter(|n| !is_ignored(n)).collect();
    if kept.contains(&"manifest.json") {
        return Some(String::new());
    }
    let mut tops = kept.iter().filter_map(|n| n.split('/').next());
    let first = tops.next()?;
    if !tops.all(|t| t == first) {
        return None;
    }
    let root = format!("{first}/");
    kept.iter()
        .any(|n| n.strip_prefix(root.as_str()) == Some("manifest.json"))
        .then_some(root)
}

/// Files the browser may not fetch: the Python side (`main.py`, any `.py`/`.pyc`,
/// `libs/`, `__pycache__/`), `manifest.json`, dot-files. `path` is relative to the root.
pub fn is_private(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower == "manifest.json"
        || lower.ends_with(".py")
        || lower.ends_with(".pyc")
        || lower.ends_with(".pyo")
        || lower.split('/').next() == Some("libs")
        || lower
            .split('/')
            .any(|seg| seg.starts_with('.') || seg == "__pycache__")
}

/// A safe relative path: `/`-separated, no empty, `.` or `..` segments, no
/// backslashes, colons or control characters.
pub fn is_safe_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 512
        && !path.starts_with('/')
        && !path.contains(['\\', ':', '\0'])
        && !path.chars().any(char::is_control)
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_skips_what_the_platform_ignores() {
        assert_eq!(root(["manifest.json", "main.py"]), Some(String::new()));
        assert_eq!(
            root(["app/manifest.json", "app/main.py"]),
            Some("app/".into())
        );
        // macOS metadata ahead of the real folder is not a root.
        assert_eq!(
            root([
                "__MACOSX/manifest.json",
                "__MACOSX/main.py",
                "app/manifest.json",
                "app/main.py",
                "app/.DS_Store",
            ]),
            Some("app/".into())
        );
        assert_eq!(root(["a/manifest.json", "b/main.py"]), None);
        assert_eq!(root(["a/b/manifest.json"]), None);
        assert_eq!(root(["__MACOSX/manifest.json"]), None);
        assert_eq!(root([]), None);
    }

    #[test]
    fn private_and_unsafe_paths() {
        for p in [
            "main.py",
            "manifest.json",
            "libs/x/y.js",
            "LIBS/a",
            "a/b.py",
            ".env",
            "x/__pycache__/m.pyc",
        ] {
            assert!(is_private(p), "{p}");
        }
        for p in [
            "index.html",
            "index.js",
            "style.css",
            "img/logo.png",
            "libsx.js",
            "mylibs/a.js",
        ] {
            assert!(!is_private(p), "{p}");
        }
        for p in [
            "../x",
            "a/../b",
            "/etc/passwd",
            "a//b",
            "a\\b",
            "c:/x",
            "./a",
            "",
            "a/",
        ] {
            assert!(!is_safe_path(p), "{p:?}");
        }
        assert!(is_safe_path("img/a b.png"));
    }
}
