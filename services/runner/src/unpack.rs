//! Bundles unpacked on the runner's disk.

/// Unpacks a bundle into `dir`. Deploy has vetted the zip; entries that would escape
/// the directory are still skipped. A single wrapping folder is stripped.
pub(crate) fn unpack(bytes: &[u8], dir: &std::path::Path) -> anyhow::Result<()> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(Result::ok)
        .map(|n| n.into_owned())
        .collect();
    let prefix = if names.iter().any(|n| n == "manifest.json") {
        String::new()
    } else {
        names
            .iter()
            .find(|n| n.ends_with("/manifest.json") && n.matches('/').count() == 1)
            .map(|n| n.trim_end_matches("manifest.json").to_owned())
            .unwrap_or_default()
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i)?;
        let Some(rel) = entry.enclosed_name() else {
            continue;
        };
        let Ok(rel) = rel.strip_prefix(&prefix) else {
            continue;
        };
        if rel.as_os_str().is_empty() || entry.is_symlink() {
            continue;
        }
        let out = dir.join(rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&out)?;
            continue;
        }
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(&out)?;
        std::io::copy(&mut entry, &mut file)?;
    }
    Ok(())
}
