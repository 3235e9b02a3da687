//! Bundles unpacked on the runner's disk.

/// Unpacks a bundle into `dir`. Deploy has vetted the zip; entries that would escape
/// the directory are still skipped. A single wrapping folder is stripped, and macOS
/// metadata left out, by the rules deploy checked the files with.
pub(crate) fn unpack(bytes: &[u8], dir: &std::path::Path) -> anyhow::Result<()> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))?;
    let mut names = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        names.push(zip.by_index_raw(i)?.name()?.replace('\\', "/"));
    }
    // The root and the ignored entries by deploy's rules, so the files that run are
    // the ones deploy checked.
    let prefix = nr_contracts::bundle::root(names.iter().map(String::as_str))
        .ok_or_else(|| anyhow::anyhow!("the bundle has no manifest.json at its root"))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    for (i, name) in names.iter().enumerate() {
        if nr_contracts::bundle::is_ignored(name) {
            continue;
        }
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
