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

    /// Starts storing an artifact whose bytes arrive in pieces: each is written to a
    /// temporary file and hashed as it comes, so an upload never has to fit in memory.
    /// Blocking: call from a blocking thread.
    pub fn upload(&self) -> Result<ArtifactUpload, ArtifactError> {
        let (tmp, file) =
            tempfile_in(&self.dir).map_err(|source| ArtifactError::Io { path: self.dir.clone(), source })?;
        Ok(ArtifactUpload { store: self.clone(), tmp: Some(tmp), file, hasher: sha2::Sha256::default(), size: 0 })
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

/// An artifact being stored a piece at a time (see [`ArtifactStore::upload`]); its
/// temporary file is removed if it is dropped unfinished.
pub struct ArtifactUpload {
    store: ArtifactStore,
    tmp: Option<PathBuf>,
    file: std::fs::File,
    hasher: sha2::Sha256,
    size: u64,
}

impl ArtifactUpload {
    /// Appends `bytes`. Blocking.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ArtifactError> {
        use sha2::Digest;
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.file.write_all(bytes).map_err(|source| self.io(source))
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Checks the bytes against `expected` and moves them into place (synced first).
    /// Bytes already stored are not stored again. Blocking.
    pub fn finish(mut self, expected: &ArtifactDigest) -> Result<ArtifactDigest, ArtifactError> {
        use sha2::Digest;
        let hex = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let digest = ArtifactDigest::parse(&hex).expect("a sha256 is 64 hex digits");
        if *expected != digest {
            return Err(ArtifactError::DigestMismatch { expected: expected.clone(), actual: digest });
        }
        let path = self.store.path(&digest);
        if path.is_file() {
            return Ok(digest);
        }
        self.file.sync_all().map_err(|source| self.io(source))?;
        let parent = path.parent().unwrap_or(&self.store.dir).to_owned();
        std::fs::create_dir_all(&parent).map_err(|source| ArtifactError::Io { path: parent.clone(), source })?;
        let tmp = self.tmp.take().expect("an unfinished upload has its file");
        std::fs::rename(&tmp, &path).map_err(|source| ArtifactError::Io { path: path.clone(), source })?;
        if let Ok(dir) = std::fs::File::open(&parent) {
            let _ = dir.sync_all();
        }
        Ok(digest)
    }

    fn io(&self, source: std::io::Error) -> ArtifactError {
        ArtifactError::Io { path: self.tmp.clone().unwrap_or_default(), source }
    }
}

impl Drop for ArtifactUpload {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
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

    #[test]
    fn uploads_in_pieces_are_hashed_as_they_come_and_leave_nothing_when_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path()).unwrap();
        let mut upload = store.upload().unwrap();
        for piece in [&b"comp"[..], b"on", b"ent"] {
            upload.write(piece).unwrap();
        }
        assert_eq!(upload.size(), 9);
        let digest = upload.finish(&ArtifactDigest::of(b"component")).unwrap();
        assert_eq!(store.get(&digest).unwrap(), b"component");

        let mut wrong = store.upload().unwrap();
        wrong.write(b"tampered").unwrap();
        assert!(matches!(wrong.finish(&digest), Err(ArtifactError::DigestMismatch { .. })));
        let mut abandoned = store.upload().unwrap();
        abandoned.write(b"half").unwrap();
        drop(abandoned);
        assert_eq!(walk(dir.path()), 1, "refused and abandoned uploads leave no file");
    }

    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).map(|p| if p.is_dir() { walk(&p) } else { 1 }).sum()
    }
}
