//! Function bundles: the zip a Lambda function's code comes in, unpacked once per
//! artifact into a folder that instances mount read-only at `/var/task`.

use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

/// Lambda's limit on a function's unzipped size.
pub const MAX_UNPACKED_BYTES: u64 = 250 * 1024 * 1024;
/// More entries than any real function has; a bound against zip bombs of empty files.
pub const MAX_ENTRIES: usize = 50_000;

/// Why a bundle cannot be used; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the function's code is not a zip archive ({0}); package a folder or a .zip")]
    NotZip(String),
    #[error("the bundle holds an entry whose path leaves the bundle: {0:?}")]
    UnsafePath(String),
    #[error("the bundle unpacks to more than {} MiB, Lambda's limit", MAX_UNPACKED_BYTES / (1024 * 1024))]
    TooLarge,
    #[error("the bundle has more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("the bundle holds a symbolic link ({0:?}); include the file it points to instead")]
    Symlink(String),
    #[error("cannot unpack the bundle: {0}")]
    Io(#[from] io::Error),
}

/// Unpacks `archive` into `dest` unless already there, and returns `dest`. Unpacks
/// into a sibling folder first and renames it into place, so a bundle is either
/// complete or absent, even if two deploys race.
pub fn unpack(archive: &Path, dest: &Path) -> Result<PathBuf, BundleError> {
    if dest.is_dir() {
        return Ok(dest.to_owned());
    }
    let parent = dest.parent().ok_or_else(|| io::Error::other("bundle folder has no parent"))?;
    fs::create_dir_all(parent)?;
    let staging = tempfile_dir(parent)?;
    extract(archive, staging.path())?;
    match fs::rename(staging.path(), dest) {
        Ok(()) => {
            std::mem::forget(staging);
            Ok(dest.to_owned())
        }
        // Another deploy of the same artifact got there first.
        Err(_) if dest.is_dir() => Ok(dest.to_owned()),
        Err(error) => Err(error.into()),
    }
}

fn extract(archive: &Path, into: &Path) -> Result<(), BundleError> {
    let file = fs::File::open(archive)?;
    let mut zip =
        zip::ZipArchive::new(io::BufReader::new(file)).map_err(|error| BundleError::NotZip(error.to_string()))?;
    if zip.len() > MAX_ENTRIES {
        return Err(BundleError::TooManyEntries);
    }
    let mut total: u64 = 0;
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index).map_err(|error| BundleError::NotZip(error.to_string()))?;
        let name = entry.name().map(|name| name.into_owned()).unwrap_or_default();
        let relative = entry.enclosed_name().ok_or_else(|| BundleError::UnsafePath(name.clone()))?;
        let path = into.join(relative);
        if entry.is_symlink() {
            return Err(BundleError::Symlink(name));
        }
        if entry.is_dir() {
            fs::create_dir_all(&path)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut out = fs::File::create(&path)?;
        // Count what is written, not what the header claims.
        let written = io::copy(&mut (&mut entry).take(MAX_UNPACKED_BYTES - total + 1), &mut out)?;
        total += written;
        if total > MAX_UNPACKED_BYTES {
            return Err(BundleError::TooLarge);
        }
        // Readable by the sandbox's unprivileged user; executable where it was.
        let executable = entry.unix_mode().is_some_and(|mode| mode & 0o111 != 0);
        set_mode(&path, if executable { 0o755 } else { 0o644 })?;
    }
    set_tree_dirs_readable(into)?;
    Ok(())
}

fn set_tree_dirs_readable(dir: &Path) -> io::Result<()> {
    set_mode(dir, 0o755)?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            set_tree_dirs_readable(&entry.path())?;
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// A uniquely named folder that removes itself unless forgotten.
struct Staging(PathBuf);

impl Staging {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir(parent: &Path) -> io::Result<Staging> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = parent.join(format!(".unpacking-{}-{n}", std::process::id()));
    fs::create_dir_all(&path)?;
    Ok(Staging(path))
}
