//! Artifacts kept in the database for a cluster: each node's content-addressed folder
//! is then a cache, filled from here on first use. An artifact is written in chunks of
//! at most 1 MiB in one transaction, its `shared_artifacts` row last, so a reader finds
//! all of it or none; read back a chunk at a time into an [`ArtifactUpload`], which
//! checks the digest before the file takes its name.

use std::path::Path;

use sqlx::Row;
use tokio::io::AsyncReadExt;
use updraft_model::{ArtifactDigest, now_millis};

use crate::artifacts::{ArtifactError, ArtifactUpload};
use crate::sql::{Store, StoreError};

/// The largest chunk stored in one row.
const CHUNK: usize = 1 << 20;

/// Why an artifact could not be shared or fetched.
#[derive(Debug, thiserror::Error)]
pub enum SharedArtifactError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Local(#[from] ArtifactError),
    #[error("reading {path} to share it failed")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("artifact {digest} is in neither this node's folder nor the database; upload it again")]
    Missing { digest: ArtifactDigest },
}

impl From<sqlx::Error> for SharedArtifactError {
    fn from(error: sqlx::Error) -> Self {
        SharedArtifactError::Store(error.into())
    }
}

impl Store {
    /// Whether the database holds artifact `digest`.
    pub async fn artifact_is_shared(&self, digest: &ArtifactDigest) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM shared_artifacts WHERE digest = $1")
            .bind(digest.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Stores the file at `path`, already checked to be `digest`, for every node. Does
    /// nothing when it is there already.
    pub async fn artifact_share(&self, digest: &ArtifactDigest, path: &Path) -> Result<(), SharedArtifactError> {
        if self.artifact_is_shared(digest).await? {
            return Ok(());
        }
        let read = |source| SharedArtifactError::Read { path: path.to_owned(), source };
        let mut file = tokio::fs::File::open(path).await.map_err(read)?;
        let mut tx = self.pool.begin().await?;
        // Another node's share of the same bytes may have left chunks of an unfinished
        // attempt: they are replaced.
        sqlx::query("DELETE FROM artifact_chunks WHERE digest = $1").bind(digest.as_str()).execute(&mut *tx).await?;
        let mut buffer = vec![0; CHUNK];
        let (mut chunks, mut size) = (0_i64, 0_i64);
        loop {
            let filled = fill(&mut file, &mut buffer).await.map_err(read)?;
            if filled == 0 {
                break;
            }
            sqlx::query("INSERT INTO artifact_chunks (digest, seq, data) VALUES ($1, $2, $3)")
                .bind(digest.as_str())
                .bind(chunks)
                .bind(&buffer[..filled])
                .execute(&mut *tx)
                .await?;
            chunks += 1;
            size += filled as i64;
        }
        sqlx::query(
            "INSERT INTO shared_artifacts (digest, size, chunks, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(digest.as_str())
        .bind(size)
        .bind(chunks)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Copies artifact `digest` from the database into `upload` (a chunk at a time) and
    /// finishes it, which checks the digest and puts the file in place.
    pub async fn artifact_fetch(
        &self,
        digest: &ArtifactDigest,
        mut upload: ArtifactUpload,
    ) -> Result<ArtifactDigest, SharedArtifactError> {
        let row = sqlx::query("SELECT chunks FROM shared_artifacts WHERE digest = $1")
            .bind(digest.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| SharedArtifactError::Missing { digest: digest.clone() })?;
        let chunks: i64 = row.try_get(0)?;
        for seq in 0..chunks {
            let row = sqlx::query("SELECT data FROM artifact_chunks WHERE digest = $1 AND seq = $2")
                .bind(digest.as_str())
                .bind(seq)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| StoreError::Corrupt { detail: format!("artifact {digest} lacks chunk {seq}") })?;
            let data: Vec<u8> = row.try_get(0)?;
            upload =
                tokio::task::spawn_blocking(move || upload.write(&data).map(|()| upload)).await.map_err(|join| {
                    ArtifactError::Io { path: Default::default(), source: std::io::Error::other(join) }
                })??;
        }
        let expected = digest.clone();
        let fetched = tokio::task::spawn_blocking(move || upload.finish(&expected))
            .await
            .map_err(|join| ArtifactError::Io { path: Default::default(), source: std::io::Error::other(join) })??;
        Ok(fetched)
    }
}

/// Reads into `buffer` until it is full or the file ends; how much was read.
async fn fill(file: &mut tokio::fs::File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        let read = file.read(&mut buffer[filled..]).await?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    Ok(filled)
}
