//! The schema's migrations, embedded in the binary and applied by sqlx's migrator: the
//! files under `migrations/<backend>/`, each `NNNN_what.sql`, one list of names for both
//! backends (each migration is written for each, under the same name). They are listed
//! here rather than found by `sqlx::migrate!`, whose proc macro builds sqlx's
//! database drivers a second time for the build host (about a minute of CPU in a first
//! build); a test checks the list against both folders. Versions, descriptions and
//! checksums are made exactly as `sqlx::migrate!` makes them, so a database migrated by
//! either sees the same history.

use std::borrow::Cow;

use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};

/// Embeds the named files of both backends' folders: every migration is written once
/// for each, under the same name.
macro_rules! embedded {
    ($($file:literal),* $(,)?) => {
        /// SQLite's migrations, oldest first.
        pub(crate) const SQLITE: Files = &[$(($file, include_str!(concat!("../migrations/sqlite/", $file)))),*];
        /// PostgreSQL's migrations, oldest first.
        pub(crate) const POSTGRES: Files = &[$(($file, include_str!(concat!("../migrations/postgres/", $file)))),*];
    };
}

embedded!(
    "0001_control_plane.sql",
    "0002_invocations.sql",
    "0003_access_keys.sql",
    "0004_async_events.sql",
    "0005_event_sources.sql",
    "0006_queue_messages.sql",
    "0007_workflows.sql",
    "0008_owners.sql",
    "0009_secrets.sql",
    "0010_log_drops.sql",
    "0011_nodes.sql",
    "0012_control_changes.sql",
    "0013_cluster_keys.sql",
    "0014_invocation_node.sql",
    "0015_permit_grants.sql",
    "0016_traces.sql",
    "0017_log_search.sql",
    "0018_span_links.sql",
    "0019_invocations_by_function_start.sql",
    "0020_aliases.sql",
    "0021_canaries.sql",
    "0022_lineage.sql",
    "0023_event_qualifier.sql",
);

/// Migration files: (file name, SQL).
pub(crate) type Files = &'static [(&'static str, &'static str)];

/// The migrator that applies `files`.
pub(crate) async fn migrator(files: Files) -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(files)).await
}

#[derive(Debug)]
struct Embedded(Files);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { self.0.iter().map(|(file, sql)| migration(file, sql)).collect() })
    }
}

/// The migration in file `file`: version `NNNN`, description `what` with spaces for
/// underscores, in a transaction unless the SQL starts with `-- no-transaction`.
fn migration(file: &str, sql: &'static str) -> Result<Migration, BoxDynError> {
    let (number, rest) =
        file.split_once('_').ok_or_else(|| format!("migration {file:?} is not named NNNN_what.sql"))?;
    let description = rest.strip_suffix(".sql").ok_or_else(|| format!("migration {file:?} is not a .sql file"))?;
    let version: i64 = number.parse().map_err(|_| format!("migration {file:?} does not start with its number"))?;
    Ok(Migration::new(
        version,
        Cow::Owned(description.replace('_', " ")),
        MigrationType::Simple,
        Cow::Borrowed(sql),
        sql.starts_with("-- no-transaction"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        for (backend, files) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
            let mut on_disk: Vec<String> = std::fs::read_dir(&folder)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            on_disk.sort();
            let embedded: Vec<&str> = files.iter().map(|(file, _)| *file).collect();
            assert_eq!(embedded, on_disk, "list every file of migrations/{backend}/ in migrations.rs");
        }
    }

    #[tokio::test]
    async fn migrations_are_named_as_sqlx_names_them() {
        let migrator = migrator(SQLITE).await.unwrap();
        let first = &migrator.migrations[0];
        assert_eq!((first.version, first.description.as_ref()), (1, "control plane"));
        assert_eq!(first.migration_type, MigrationType::Simple);
        assert!(!first.no_tx);
    }
}
