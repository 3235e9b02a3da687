//! Packing an app folder into a bundle zip, as the author guide says: the folder's
//! contents at the zip's root.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

/// Zips the contents of `dir` (files at the root; `__pycache__`, `.git` and `.DS_Store`
/// left out). Returns the zip bytes. A folder without `manifest.json`, or holding a
/// symbolic link (which deploy refuses), is an error.
pub fn pack_dir(dir: &Path) -> anyhow::Result<Vec<u8>> {
    if !dir.join("manifest.json").is_file() {
        anyhow::bail!(
            "{} has no manifest.json: pack the app's folder (`noderouter app new <name>` makes one)",
            dir.display()
        );
    }
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o644);
        let mut stack = vec![dir.to_path_buf()];
        let mut files = Vec::new();
        while let Some(d) = stack.pop() {
            for entry in
                std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?
            {
                let entry = entry?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name == "__pycache__" || name == ".git" || name == ".DS_Store" {
                    continue;
                }
                let kind = entry.file_type()?;
                if kind.is_symlink() {
                    anyhow::bail!(
                        "{} is a symbolic link; bundles cannot hold links: put a copy of the file there",
                        entry.path().display()
                    );
                }
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    files.push(entry.path());
                }
            }
        }
        files.sort();
        for path in files {
            let rel = path.strip_prefix(dir)?;
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            zip.start_file(rel, options)?;
            zip.write_all(&std::fs::read(&path)?)?;
        }
        zip.finish()?;
    }
    Ok(buf.into_inner())
}

/// The bundle name of a folder: its last path component.
pub fn dir_name(dir: &Path) -> anyhow::Result<String> {
    let abs = std::path::absolute(dir)?;
    abs.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("the app folder has no name")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_packed_with_its_contents_at_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("notes");
        std::fs::create_dir_all(app.join("libs/pkg")).unwrap();
        std::fs::create_dir_all(app.join("__pycache__")).unwrap();
        std::fs::write(app.join("manifest.json"), "{}").unwrap();
        std::fs::write(app.join("main.py"), "").unwrap();
        std::fs::write(app.join("libs/pkg/__init__.py"), "").unwrap();
        std::fs::write(app.join("__pycache__/main.cpython.pyc"), "").unwrap();
        std::fs::write(app.join(".DS_Store"), "").unwrap();
        let bytes = pack_dir(&app).unwrap();
        let zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["libs/pkg/__init__.py", "main.py", "manifest.json"]);
        assert_eq!(dir_name(&app).unwrap(), "notes");
    }

    #[test]
    fn a_folder_without_manifest_or_with_a_link_is_not_packed() {
        let dir = tempfile::tempdir().unwrap();
        let err = pack_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no manifest.json"), "{err}");
        std::fs::write(dir.path().join("manifest.json"), "{}").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link.txt")).unwrap();
        let err = pack_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }
}
