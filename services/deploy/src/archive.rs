//! Zip safety: reads a bundle zip without trusting it. Entry names that escape the root,
//! links and special files, names colliding after case folding, too many entries, and
//! entries or totals too large or too compressed are refused. Sizes are counted while
//! inflating, never taken from the headers. The layout (files at the root, or inside a
//! single wrapping folder) is found here; whether the folder's name is right is decided
//! once the manifest is read.

use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read, Write};
use std::path::Path;

use crate::findings::Refused;

/// Limits on what a bundle may unpack to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Entries in the zip (files and folders, ignored ones included).
    pub max_entries: usize,
    /// Inflated size of one entry, bytes.
    pub max_entry_bytes: u64,
    /// Inflated size of all entries together, bytes.
    pub max_total_bytes: u64,
    /// Inflated size over compressed size of one entry.
    pub max_ratio: u64,
    /// Entries that inflate to less than this are exempt from the ratio (a small file of
    /// spaces compresses very well and is harmless).
    pub ratio_min_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 10_000,
            max_entry_bytes: 100 * 1024 * 1024,
            max_total_bytes: 500 * 1024 * 1024,
            max_ratio: 200,
            ratio_min_bytes: 1024 * 1024,
        }
    }
}

/// Text files the later checks read, kept in memory up to this size each.
const TEXT_LIMIT: u64 = 2 * 1024 * 1024;
/// Largest `manifest.json`.
const MANIFEST_LIMIT: u64 = 1024 * 1024;

/// The bundle's name from the uploaded file name: `notes.zip` → `notes`.
pub fn bundle_name(file_name: &str) -> &str {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    base.strip_suffix(".zip")
        .or_else(|| base.strip_suffix(".ZIP"))
        .unwrap_or(base)
}

pub use nr_contracts::bundle::is_ignored;

/// Why an entry name is unsafe, or `None` when it is a plain relative path.
pub fn unsafe_name(raw: &[u8]) -> Option<&'static str> {
    if raw.is_empty() {
        return Some("has an empty name");
    }
    if raw.contains(&0) {
        return Some("has a NUL byte in its name");
    }
    if raw.contains(&b'\\') {
        return Some(
            "uses backslashes: zip paths use /, and a backslash may escape the root on Windows (Windows PowerShell 5.1's Compress-Archive writes them: pack with `noderouter app pack`, 7-Zip, or `tar -a -c -f my_app.zip *` inside the folder)",
        );
    }
    if raw[0] == b'/' {
        return Some("is an absolute path");
    }
    if raw.len() >= 2 && raw[0].is_ascii_alphabetic() && raw[1] == b':' {
        return Some("starts with a drive letter");
    }
    if raw.len() > 1024 {
        return Some("is longer than 1024 bytes");
    }
    let trimmed = raw.strip_suffix(b"/").unwrap_or(raw);
    for part in trimmed.split(|b| *b == b'/') {
        match part {
            b".." => return Some("escapes the bundle root with '..'"),
            b"." | b"" => return Some("has an empty or '.' path segment"),
            // What a file name may be on the runner's disk.
            p if p.len() > 255 => return Some("has a file or folder name over 255 bytes"),
            _ => {}
        }
    }
    None
}

/// What an entry's Unix file type bits say, when it is not a regular file or folder.
pub fn special_kind(unix_mode: Option<u32>) -> Option<&'static str> {
    match unix_mode? & 0o170_000 {
        0 | 0o100_000 | 0o040_000 => None,
        0o120_000 => Some("a symbolic link"),
        0o010_000 => Some("a named pipe"),
        0o020_000 | 0o060_000 => Some("a device file"),
        0o140_000 => Some("a socket"),
        _ => Some("a special file"),
    }
}

/// A bundle that passed the zip checks.
#[derive(Debug, Clone, Default)]
pub struct Unpacked {
    /// `""` when files are at the zip's root, else the wrapping folder with its `/`.
    pub root: String,
    /// Every file, relative to the root, ignored entries left out.
    pub files: Vec<String>,
    /// `manifest.json` and the frontend files outside `libs/`, by path relative to the root.
    pub texts: BTreeMap<String, Vec<u8>>,
    /// Inflated bytes of all entries.
    pub total_bytes: u64,
}

impl Unpacked {
    pub fn has_file(&self, rel: &str) -> bool {
        self.files.iter().any(|f| f == rel)
    }
}

fn keeps_text(rel: &str) -> bool {
    if rel == "manifest.json" {
        return true;
    }
    if rel.starts_with("libs/") || rel.starts_with("vendor/") {
        return false;
    }
    let lower = rel.to_ascii_lowercase();
    if lower.ends_with(".min.js") || lower.ends_with(".min.css") {
        return false;
    }
    [".html", ".htm", ".js", ".mjs", ".css"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

const HOW_TO_ZIP: &str = "zip the contents of the app folder, not the folder: cd my_app && zip -r ../my_app.zip . (or: noderouter app pack my_app)";

/// The message for an upload the zip reader refuses, in the author's words: the
/// library's "Could not find EOCD" means the bytes are not a zip archive at all.
fn not_a_zip(e: &zip::result::ZipError) -> String {
    let text = e.to_string();
    if text.contains("EOCD")
        || text.contains("central directory")
        || text.contains("Invalid Zip archive")
    {
        format!("the file is not a zip archive (or it is cut short); {HOW_TO_ZIP}")
    } else {
        format!("the upload is not a readable zip archive ({text}); {HOW_TO_ZIP}")
    }
}

struct Entry {
    index: usize,
    name: String,
    is_dir: bool,
}

/// Reads and checks `bytes`; writes the bundle's files (root stripped, ignored entries
/// left out) under `dest` when given.
pub fn unpack(bytes: &[u8], limits: &Limits, dest: Option<&Path>) -> Result<Unpacked, Refused> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| Refused::one(400, "bundle.zip", None, None, not_a_zip(&e)))?;
    if zip.has_duplicate_names() {
        return Err(Refused::one(
            422,
            "bundle.path",
            None,
            None,
            "the zip holds two entries with the same name; pack it again",
        ));
    }
    if zip.len() > limits.max_entries {
        return Err(Refused::one(
            413,
            "bundle.entries",
            None,
            None,
            format!(
                "the zip holds {} entries; the limit is {} (NR_DEPLOY_MAX_ENTRIES)",
                zip.len(),
                limits.max_entries
            ),
        ));
    }

    let mut entries = Vec::with_capacity(zip.len());
    let mut bad = Vec::new();
    for index in 0..zip.len() {
        let file = zip.by_index_raw(index).map_err(|e| {
            Refused::one(
                400,
                "bundle.zip",
                None,
                None,
                format!("cannot read entry {index} of the zip: {e}"),
            )
        })?;
        let raw = file.name_raw();
        let shown = String::from_utf8_lossy(raw).replace('\0', "\\0");
        if let Some(why) = unsafe_name(raw) {
            bad.push(crate::findings::finding("bundle.path", Some(&shown), None, format!("entry {shown:?} {why}; it is refused because it could be written outside the app's folder")));
            continue;
        }
        let name = match file.name() {
            Ok(n) => n.into_owned(),
            Err(e) => {
                bad.push(crate::findings::finding(
                    "bundle.path",
                    Some(&shown),
                    None,
                    format!("entry {shown:?} has an unreadable name: {e}"),
                ));
                continue;
            }
        };
        if let Some(kind) =
            special_kind(file.unix_mode()).or(file.is_symlink().then_some("a symbolic link"))
        {
            bad.push(crate::findings::finding("bundle.link", Some(&name), None, format!("entry {name:?} is {kind}; links (symbolic or hard) and special files are refused: put a copy of the file in the bundle")));
            continue;
        }
        if file.encrypted() {
            bad.push(crate::findings::finding(
                "bundle.zip",
                Some(&name),
                None,
                format!("entry {name:?} is encrypted; bundles must not be password-protected"),
            ));
            continue;
        }
        entries.push(Entry {
            index,
            is_dir: name.ends_with('/'),
            name,
        });
    }
    if !bad.is_empty() {
        return Err(Refused::many(422, bad));
    }
    case_collisions(&entries)?;

    let live: Vec<&Entry> = entries.iter().filter(|e| !is_ignored(&e.name)).collect();
    let root = layout(&live)?;

    let mut out = Unpacked {
        root: root.clone(),
        ..Default::default()
    };
    let mut public_bytes: u64 = 0;
    if let Some(dest) = dest {
        std::fs::create_dir_all(dest)
            .map_err(|e| Refused::internal(format!("cannot create {}: {e}", dest.display())))?;
    }
    for entry in &entries {
        let ignored = is_ignored(&entry.name);
        let rel = entry
            .name
            .strip_prefix(&root)
            .unwrap_or(&entry.name)
            .to_owned();
        if entry.is_dir {
            if let (Some(dest), false, false) = (dest, ignored, rel.is_empty()) {
                let dir = dest.join(rel.trim_end_matches('/'));
                std::fs::create_dir_all(&dir).map_err(|e| {
                    Refused::internal(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            continue;
        }
        let mut file = zip.by_index(entry.index).map_err(|e| {
            Refused::one(
                422,
                "bundle.zip",
                Some(&entry.name),
                None,
                format!(
                    "cannot inflate {:?}: {e} (use standard deflate compression)",
                    entry.name
                ),
            )
        })?;
        let compressed = file.compressed_size();
        let keep = !ignored && keeps_text(&rel);
        // What the gateway serves to browsers, and keeps in memory while it does.
        let public = !ignored
            && nr_contracts::bundle::is_safe_path(&rel)
            && !nr_contracts::bundle::is_private(&rel);
        let mut text = Vec::new();
        let mut sink: Option<std::fs::File> = match (dest, ignored) {
            (Some(dest), false) => {
                let path = dest.join(&rel);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Refused::internal(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                Some(std::fs::File::create(&path).map_err(|e| {
                    Refused::internal(format!("cannot write {}: {e}", path.display()))
                })?)
            }
            _ => None,
        };
        let mut size: u64 = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(|e| {
                Refused::one(
                    422,
                    "bundle.zip",
                    Some(&entry.name),
                    None,
                    format!("cannot inflate {:?}: {e}", entry.name),
                )
            })?;
            if n == 0 {
                break;
            }
            size += n as u64;
            out.total_bytes += n as u64;
            if size > limits.max_entry_bytes {
                return Err(Refused::one(
                    413,
                    "bundle.entry_size",
                    Some(&entry.name),
                    None,
                    format!("{:?} inflates to more than {} bytes, the limit for one file (NR_DEPLOY_MAX_ENTRY_BYTES)", entry.name, limits.max_entry_bytes),
                ));
            }
            if public {
                public_bytes += n as u64;
                public_limit(&entry.name, size, public_bytes)?;
            }
            if out.total_bytes > limits.max_total_bytes {
                return Err(Refused::one(
                    413,
                    "bundle.total_size",
                    Some(&entry.name),
                    None,
                    format!("the bundle inflates to more than {} bytes, the limit for all files together (NR_DEPLOY_MAX_UNPACKED_BYTES)", limits.max_total_bytes),
                ));
            }
            if size > limits.ratio_min_bytes
                && size > compressed.max(1).saturating_mul(limits.max_ratio)
            {
                return Err(Refused::one(
                    413,
                    "bundle.ratio",
                    Some(&entry.name),
                    None,
                    format!("{:?} inflates more than {} times its compressed size of {compressed} bytes: refused as a zip bomb (NR_DEPLOY_MAX_RATIO)", entry.name, limits.max_ratio),
                ));
            }
            let chunk = buf.get(..n).unwrap_or_default();
            if let Some(f) = sink.as_mut() {
                f.write_all(chunk)
                    .map_err(|e| Refused::internal(format!("cannot write {rel}: {e}")))?;
            }
            if keep && (text.len() as u64) <= TEXT_LIMIT {
                text.extend_from_slice(chunk);
            }
        }
        if ignored {
            continue;
        }
        if rel == "manifest.json" && size > MANIFEST_LIMIT {
            return Err(Refused::one(
                413,
                "manifest.json",
                Some("manifest.json"),
                None,
                format!("manifest.json is {size} bytes; the limit is {MANIFEST_LIMIT}"),
            ));
        }
        if keep && (text.len() as u64) <= TEXT_LIMIT {
            out.texts.insert(rel.clone(), text);
        }
        out.files.push(rel);
    }
    Ok(out)
}

/// Refuses names that collide once case is folded (`Main.py` and `main.py`, or a file
/// and a folder of the same name), which would overwrite each other on many disks.
fn case_collisions(entries: &[Entry]) -> Result<(), Refused> {
    // folded path -> (spelling, is a folder)
    let mut seen: HashMap<String, (String, bool)> = HashMap::new();
    let mut bad = Vec::new();
    for e in entries {
        let path = e.name.trim_end_matches('/');
        let parts: Vec<&str> = path.split('/').collect();
        for i in 1..=parts.len() {
            let spelled = parts[..i].join("/");
            let is_dir = i < parts.len() || e.is_dir;
            let key = spelled.to_lowercase();
            match seen.get(&key) {
                None => {
                    seen.insert(key, (spelled, is_dir));
                }
                Some((other, other_dir)) if *other == spelled && *other_dir == is_dir => {}
                Some((other, other_dir)) => {
                    let what = |d: bool| if d { "folder" } else { "file" };
                    bad.push(crate::findings::finding(
                        "bundle.case_collision",
                        Some(&spelled),
                        None,
                        format!("{} {spelled:?} collides with {} {other:?}: names that differ only in case overwrite each other on case-insensitive disks", what(is_dir), what(*other_dir)),
                    ));
                    break;
                }
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Refused::many(422, bad))
    }
}

/// Finds the bundle root: the zip's root when it holds `manifest.json`, else a single
/// top-level folder holding it.
fn layout(entries: &[&Entry]) -> Result<String, Refused> {
    // The runner and the gateway find the root by the same rule.
    if let Some(root) = nr_contracts::bundle::root(entries.iter().map(|e| e.name.as_str())) {
        return Ok(root);
    }
    let found: Vec<&str> = entries
        .iter()
        .map(|e| e.name.as_str())
        .filter(|n| n.ends_with("/manifest.json"))
        .take(3)
        .collect();
    let message = if entries.is_empty() {
        format!("the zip is empty: {HOW_TO_ZIP}")
    } else if found.is_empty() {
        format!("manifest.json is missing at the root of the zip: {HOW_TO_ZIP}")
    } else {
        format!(
            "manifest.json must be at the root of the zip, but it is at {:?}: {HOW_TO_ZIP}",
            found.join(", ")
        )
    };
    Err(Refused::one(422, "bundle.layout", None, None, message))
}

/// Refuses a public file (one the gateway serves to browsers: not Python, not `libs/`,
/// not `manifest.json`, not a dot-file) over the size the gateway serves, or public
/// files over what one bundle may keep in the gateway's memory.
fn public_limit(name: &str, size: u64, total: u64) -> Result<(), Refused> {
    use nr_contracts::bundle::{MAX_PUBLIC_BYTES, MAX_PUBLIC_FILE_BYTES};
    if size > MAX_PUBLIC_FILE_BYTES {
        return Err(Refused::one(
            413,
            "bundle.public_file_size",
            Some(name),
            None,
            format!("{name:?} inflates to more than {MAX_PUBLIC_FILE_BYTES} bytes, the most the gateway serves as one page file; put large data in libs/ or fetch it from your app"),
        ));
    }
    if total > MAX_PUBLIC_BYTES {
        return Err(Refused::one(
            413,
            "bundle.public_size",
            Some(name),
            None,
            format!("the bundle's page files (everything but Python, libs/, manifest.json and dot-files) inflate to more than {MAX_PUBLIC_BYTES} bytes together, reached at {name:?}; the gateway keeps them in memory: put large data in libs/ or fetch it from your app"),
        ));
    }
    Ok(())
}

/// The refusal for a wrapping folder that is not named like the app.
pub fn wrong_folder(folder: &str, app_name: &str) -> Refused {
    Refused::one(
        422,
        "bundle.layout",
        None,
        None,
        format!("the files are inside a folder {folder:?}, which is not named like the app {app_name:?}: {HOW_TO_ZIP}"),
    )
}

/// The warning for a wrapping folder named like the app (what Finder and Explorer make).
pub fn wrapped_warning(folder: &str) -> crate::findings::Finding {
    crate::findings::finding(
        "bundle.layout",
        None,
        None,
        format!("the files are inside a wrapping folder {folder:?}; accepted, but the guide's layout has them at the zip's root: {HOW_TO_ZIP}"),
    )
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
