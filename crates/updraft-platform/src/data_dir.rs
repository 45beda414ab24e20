//! The data directory: created private, this node's lasting id, and files only the
//! server may read.

use std::path::Path;

use crate::StartError;

/// This node's id, kept in `<data-dir>/node-id` (created on first start).
pub(crate) fn node_id(data_dir: &Path) -> Result<String, StartError> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            write_private_file(&path, id.as_bytes()).map_err(|source| StartError::DataDir { path, source })?;
            Ok(id)
        }
    }
}

pub(crate) fn create_private_dir(path: &Path) -> Result<(), StartError> {
    std::fs::create_dir_all(path).map_err(|source| StartError::DataDir { path: path.to_owned(), source })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .map_err(|source| StartError::DataDir { path: path.to_owned(), source })?;
    }
    Ok(())
}

pub(crate) fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
