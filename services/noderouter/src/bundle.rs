//! Packing an app folder into a bundle zip, as the author guide says: the folder's
//! contents at the zip's root.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

/// Zips the contents of `dir` (files at the root; `__pycache__`, `.git` and `.DS_Store`
/// left out). Returns the zip bytes.
pub fn pack_dir(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
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
