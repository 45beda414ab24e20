//! Packaging a Lambda function's folder as the zip the server unpacks.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

/// Folders left out of a bundle: version control and caches the runtime rebuilds.
const SKIPPED: &[&str] = &[".git", "__pycache__", ".pytest_cache", ".venv"];

/// Zips `dir` with its files in a fixed order and fixed timestamps, so that the same
/// folder always makes the same artifact (and a redeploy of unchanged code uploads
/// nothing). Executable bits are kept: a custom runtime's `bootstrap` needs its own.
pub fn zip_dir(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for relative in files {
        let path = dir.join(&relative);
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(&path)?.permissions().mode()
        };
        let options = zip::write::SimpleFileOptions::default()
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(if mode & 0o111 != 0 { 0o755 } else { 0o644 });
        let name = relative.to_str().with_context(|| format!("{} is not a UTF-8 path", relative.display()))?;
        zip.start_file(name, options)?;
        zip.write_all(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)?;
    }
    Ok(zip.finish()?.into_inner())
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if !SKIPPED.iter().any(|skip| entry.file_name() == *skip) {
                collect(root, &path, files)?;
            }
        } else if kind.is_file() {
            files.push(path.strip_prefix(root)?.to_owned());
        }
        // Symbolic links and other special files are left out: the bundle holds files.
    }
    Ok(())
}
