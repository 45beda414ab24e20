//! Artifacts: uploads streamed to the content-addressed store, and where they are.

use std::path::PathBuf;

use updraft_model::ArtifactDigest;
use updraft_store::ArtifactError;

use crate::{Platform, UploadError};

/// An artifact being uploaded: bytes are gathered a megabyte at a time and written
/// (and hashed) on a blocking thread, so an upload holds at most that much memory.
pub struct ArtifactWriter {
    upload: Option<updraft_store::ArtifactUpload>,
    buffer: Vec<u8>,
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
        Ok(tokio::task::spawn_blocking(move || upload.finish(&expected)).await.map_err(join_error)??)
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
        Ok(ArtifactWriter { upload: Some(upload), buffer: Vec::new() })
    }

    pub fn artifact_exists(&self, digest: &ArtifactDigest) -> bool {
        self.artifacts.contains(digest)
    }

    pub fn artifact_path(&self, digest: &ArtifactDigest) -> PathBuf {
        self.artifacts.path(digest)
    }
}
