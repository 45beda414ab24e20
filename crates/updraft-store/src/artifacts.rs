//! Artifacts stored by content: `<dir>/sha256/<first two hex digits>/<digest>`.
//!
//! A file is written to a temporary name, synced, then renamed into place, so a crash
//! leaves either the whole artifact or none; the same bytes are stored once.

use std::io::Write;
use std::path::{Path, PathBuf};

use updraft_model::ArtifactDigest;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("the artifact's sha256 is {actual}, not the {expected} it was uploaded as")]
    DigestMismatch { expected: ArtifactDigest, actual: ArtifactDigest },
    #[error("artifact {digest} is not stored; upload it first")]
    NotFound { digest: ArtifactDigest },
    #[error("artifact store I/O failed at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A folder of artifacts addressed by their sha256.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    dir: PathBuf,
}

impl ArtifactStore {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, ArtifactError> {
        let dir = dir.into().join("sha256");
        std::fs::create_dir_all(&dir).map_err(|source| ArtifactError::Io { path: dir.clone(), source })?;
        Ok(Self { dir })
    }

    pub fn path(&self, digest: &ArtifactDigest) -> PathBuf {
        let hex = digest.as_str();
        self.dir.join(&hex[..2]).join(hex)
    }

    pub fn contains(&self, digest: &ArtifactDigest) -> bool {
        self.path(digest).is_file()
    }

    /// Stores `bytes`, checking them against `expected` when given. Storing bytes that
    /// are already there is a no-op. Blocking: call from a blocking thread.
    pub fn put(&self, bytes: &[u8], expected: Option<&ArtifactDigest>) -> Result<ArtifactDigest, ArtifactError> {
        let digest = ArtifactDigest::of(bytes);
        if let Some(expected) = expected
            && *expected != digest
        {
            return Err(ArtifactError::DigestMismatch { expected: expected.clone(), actual: digest });
        }
        let path = self.path(&digest);
        if path.is_file() {
            return Ok(digest);
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ArtifactError::Io { path, source }
        };
        let parent = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let mut tmp = tempfile_in(parent).map_err(io(parent))?;
        tmp.1.write_all(bytes).map_err(io(&tmp.0))?;
        tmp.1.sync_all().map_err(io(&tmp.0))?;
        std::fs::rename(&tmp.0, &path).map_err(io(&path))?;
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
        Ok(digest)
    }

    /// Reads an artifact whole. Blocking: call from a blocking thread.
    pub fn get(&self, digest: &ArtifactDigest) -> Result<Vec<u8>, ArtifactError> {
        let path = self.path(digest);
        std::fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ArtifactError::NotFound { digest: digest.clone() },
            _ => ArtifactError::Io { path, source },
        })
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = format!(".upload-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
    Ok((path, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_by_content_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path()).unwrap();
        let digest = store.put(b"component", None).unwrap();
        assert_eq!(digest, ArtifactDigest::of(b"component"));
        assert_eq!(store.put(b"component", Some(&digest)).unwrap(), digest);
        assert_eq!(store.get(&digest).unwrap(), b"component");
        let wrong = ArtifactDigest::of(b"other");
        assert!(matches!(store.put(b"component", Some(&wrong)), Err(ArtifactError::DigestMismatch { .. })));
        assert!(matches!(store.get(&wrong), Err(ArtifactError::NotFound { .. })));
        let files = walk(dir.path());
        assert_eq!(files, 1, "one file for the same bytes stored twice");
    }

    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).map(|p| if p.is_dir() { walk(&p) } else { 1 }).sum()
    }
}
