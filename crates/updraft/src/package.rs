//! Packaging a function's folder as the zip the server unpacks, and the fingerprints
//! that tell a build whether its inputs changed.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::Digest as _;

/// Folders never part of a bundle or a build's inputs: version control, caches the
/// runtime rebuilds, and Updraft's own build folder.
const SKIPPED: &[&str] = &[".git", "__pycache__", ".pytest_cache", ".venv", ".updraft"];

/// A folder whose files go into a bundle under `prefix`, less the subfolders named in
/// `skip` (at any depth).
pub struct Layer<'a> {
    pub root: &'a Path,
    pub prefix: &'a str,
    pub skip: &'a [&'a str],
}

impl<'a> Layer<'a> {
    /// All of `root`'s files at the bundle's top.
    pub fn whole(root: &'a Path) -> Self {
        Self { root, prefix: "", skip: &[] }
    }
}

/// Zips the layers' files in a fixed order with fixed timestamps, so that the same files
/// always make the same artifact (and a redeploy of unchanged code uploads nothing).
/// Where two layers hold the same path, the later one's file is taken. Executable bits
/// are kept: a custom runtime's `bootstrap` needs its own.
pub fn zip_layers(layers: &[Layer<'_>]) -> anyhow::Result<Vec<u8>> {
    let mut files = BTreeMap::new();
    for layer in layers {
        for relative in files_under(layer.root, layer.skip)? {
            let name = Path::new(layer.prefix).join(&relative);
            let name = name.to_str().with_context(|| format!("{} is not a UTF-8 path", name.display()))?.to_owned();
            files.insert(name, layer.root.join(relative));
        }
    }
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, path) in files {
        let options = zip::write::SimpleFileOptions::default()
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(if executable(&path)? { 0o755 } else { 0o644 });
        zip.start_file(name, options)?;
        zip.write_all(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)?;
    }
    Ok(zip.finish()?.into_inner())
}

/// A digest of a file, or of a folder's files (their paths, contents and executable
/// bits, less the subfolders in `skip`): equal exactly when those are.
pub fn fingerprint(path: &Path, skip: &[&str]) -> anyhow::Result<String> {
    let mut hasher = sha2::Sha256::new();
    if path.is_dir() {
        for relative in files_under(path, skip)? {
            let file = path.join(&relative);
            let contents = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let name = relative.as_os_str().as_encoded_bytes();
            hasher.update((name.len() as u64).to_le_bytes());
            hasher.update(name);
            hasher.update([u8::from(executable(&file)?)]);
            hasher.update((contents.len() as u64).to_le_bytes());
            hasher.update(&contents);
        }
    } else {
        hasher.update(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The files under `root`, as sorted paths relative to it. Symbolic links and other
/// special files are left out: a bundle holds files.
fn files_under(root: &Path, skip: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    collect(root, root, skip, &mut files)?;
    files.sort();
    Ok(files)
}

fn collect(root: &Path, dir: &Path, skip: &[&str], files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let name = entry.file_name();
        if kind.is_dir() {
            if !SKIPPED.iter().chain(skip).any(|skipped| name == **skipped) {
                collect(root, &entry.path(), skip, files)?;
            }
        } else if kind.is_file() {
            files.push(entry.path().strip_prefix(root)?.to_owned());
        }
    }
    Ok(())
}

fn executable(path: &Path) -> anyhow::Result<bool> {
    use std::os::unix::fs::PermissionsExt as _;
    let metadata = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(metadata.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_files_make_the_same_zip_and_a_later_layer_wins() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        for root in [first.path(), second.path()] {
            std::fs::create_dir_all(root.join("pkg/__pycache__")).unwrap();
            std::fs::write(root.join("pkg/__pycache__/x.pyc"), "cache").unwrap();
        }
        std::fs::write(first.path().join("pkg/mod.py"), "first").unwrap();
        std::fs::write(second.path().join("pkg/mod.py"), "second").unwrap();
        std::fs::write(second.path().join("app.py"), "app").unwrap();
        let layers = [Layer::whole(first.path()), Layer { root: second.path(), prefix: "", skip: &[] }];
        let zipped = zip_layers(&layers).unwrap();
        assert_eq!(zipped, zip_layers(&layers).unwrap(), "zipping is deterministic");
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zipped)).unwrap();
        let names: Vec<String> = archive.file_names().map(|name| name.unwrap().into_owned()).collect();
        assert_eq!(names, ["app.py", "pkg/mod.py"], "sorted, caches left out");
        let mut module = String::new();
        std::io::Read::read_to_string(&mut archive.by_name("pkg/mod.py").unwrap(), &mut module).unwrap();
        assert_eq!(module, "second");
    }

    #[test]
    fn a_fingerprint_changes_with_a_file_and_not_with_what_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("node_modules/x")).unwrap();
        std::fs::write(dir.path().join("index.js"), "one").unwrap();
        let before = fingerprint(dir.path(), &["node_modules"]).unwrap();
        std::fs::write(dir.path().join("node_modules/x/index.js"), "dependency").unwrap();
        std::fs::create_dir_all(dir.path().join(".updraft/build")).unwrap();
        std::fs::write(dir.path().join(".updraft/build/state.json"), "{}").unwrap();
        assert_eq!(fingerprint(dir.path(), &["node_modules"]).unwrap(), before);
        assert_ne!(fingerprint(dir.path(), &[]).unwrap(), before);
        std::fs::write(dir.path().join("index.js"), "two").unwrap();
        assert_ne!(fingerprint(dir.path(), &["node_modules"]).unwrap(), before);
        // A file renamed is a change even with the same contents.
        let renamed = fingerprint(dir.path(), &["node_modules"]).unwrap();
        std::fs::rename(dir.path().join("index.js"), dir.path().join("main.js")).unwrap();
        assert_ne!(fingerprint(dir.path(), &["node_modules"]).unwrap(), renamed);
    }
}
