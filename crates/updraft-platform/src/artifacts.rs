//! Artifacts: uploads streamed to the content-addressed store, and where they are. In
//! a cluster (on PostgreSQL) every upload is also stored once in the database, and this
//! node's folder is a cache: an artifact another node took is fetched on first use,
//! digest-checked, and kept.

use std::path::PathBuf;

use updraft_model::ArtifactDigest;
use updraft_store::{ArtifactError, ArtifactStore, Backend, SharedArtifactError, Store};

use crate::{Platform, UploadError};

/// An artifact being uploaded: bytes are gathered a megabyte at a time and written
/// (and hashed) on a blocking thread, so an upload holds at most that much memory.
pub struct ArtifactWriter {
    upload: Option<updraft_store::ArtifactUpload>,
    buffer: Vec<u8>,
    /// In a cluster: the database the finished artifact is shared through.
    shared: Option<Store>,
    artifacts: ArtifactStore,
}

/// How much of an upload is gathered before it is written.
pub(crate) const UPLOAD_BUFFER: usize = 1 << 20;

impl ArtifactWriter {
    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.upload.as_ref().map_or(0, |upload| upload.size()) + self.buffer.len() as u64
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), UploadError> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= UPLOAD_BUFFER {
            self.flush().await?;
        }
        Ok(())
    }

    pub(crate) async fn flush(&mut self) -> Result<(), ArtifactError> {
        let mut upload = self.upload.take().expect("a writer holds its upload until finished");
        let buffer = std::mem::take(&mut self.buffer);
        let (upload, written) = tokio::task::spawn_blocking(move || {
            let written = upload.write(&buffer);
            (upload, written)
        })
        .await
        .map_err(join_error)?;
        self.upload = Some(upload);
        written
    }

    /// Checks the bytes against `expected` and stores them under it.
    pub async fn finish(mut self, expected: ArtifactDigest) -> Result<ArtifactDigest, UploadError> {
        self.flush().await?;
        let upload = self.upload.take().expect("a writer holds its upload until finished");
        let digest = tokio::task::spawn_blocking(move || upload.finish(&expected)).await.map_err(join_error)??;
        if let Some(store) = &self.shared {
            store.artifact_share(&digest, &self.artifacts.path(&digest)).await?;
        }
        Ok(digest)
    }
}

pub(crate) fn join_error(join: tokio::task::JoinError) -> ArtifactError {
    ArtifactError::Io { path: PathBuf::new(), source: std::io::Error::other(join) }
}

impl Platform {
    /// Starts storing an uploaded artifact, written to disk and hashed as it arrives.
    pub async fn artifact_writer(&self) -> Result<ArtifactWriter, UploadError> {
        let artifacts = self.artifacts.clone();
        let upload = tokio::task::spawn_blocking(move || artifacts.upload()).await.map_err(join_error)??;
        Ok(ArtifactWriter {
            upload: Some(upload),
            buffer: Vec::new(),
            shared: self.clustered().then(|| self.store.clone()),
            artifacts: self.artifacts.clone(),
        })
    }

    /// An artifact's size; `None` when it was never uploaded (to any node).
    pub async fn artifact_size(&self, digest: &ArtifactDigest) -> Result<Option<u64>, UploadError> {
        if !self.artifact_available(digest).await? {
            return Ok(None);
        }
        let path = self.artifact_local(digest).await?;
        let size = std::fs::metadata(&path).map_err(|source| ArtifactError::Io { path, source })?.len();
        Ok(Some(size))
    }

    /// Whether a deploy may name artifact `digest`: it is in this node's folder, or, in
    /// a cluster, in the database. In a cluster, one only this node has (uploaded before
    /// it joined) is shared on the way, so every node can run what is deployed.
    pub(crate) async fn artifact_available(&self, digest: &ArtifactDigest) -> Result<bool, SharedArtifactError> {
        let local = self.artifacts.contains(digest);
        if !self.clustered() {
            return Ok(local);
        }
        if self.store.artifact_is_shared(digest).await? {
            return Ok(true);
        }
        if local {
            self.store.artifact_share(digest, &self.artifacts.path(digest)).await?;
        }
        Ok(local)
    }

    /// Artifact `digest` in this node's folder, fetched from the database first if
    /// another node of the cluster took it.
    pub(crate) async fn artifact_local(&self, digest: &ArtifactDigest) -> Result<PathBuf, SharedArtifactError> {
        let path = self.artifacts.path(digest);
        if self.artifacts.contains(digest) || !self.clustered() {
            return Ok(path);
        }
        let artifacts = self.artifacts.clone();
        let upload = tokio::task::spawn_blocking(move || artifacts.upload()).await.map_err(join_error)??;
        self.store.artifact_fetch(digest, upload).await?;
        tracing::info!(%digest, "fetched an artifact from the cluster's database");
        Ok(path)
    }

    /// Whether this node shares its database with others (PostgreSQL).
    pub(crate) fn clustered(&self) -> bool {
        self.store.backend() == Backend::Postgres
    }
}
