//! The store's integration tests: every check runs once against SQLite and once against
//! PostgreSQL, each on a fresh database (see `support` for how they are made).

/// Generates the tests `$sqlite` and `$postgres`, which run `$run(url)` on a fresh database
/// of each kind and then delete it.
macro_rules! on_both_backends {
    ($sqlite:ident, $postgres:ident, $run:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            crate::support::TestDb::sqlite().run($run).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            if let Some(db) = crate::support::TestDb::postgres().await {
                db.run($run).await;
            }
        }
    };
}

/// `check => sqlite_test, postgres_test;` runs `check(&store)` on a store connected to a
/// fresh database of each kind.
macro_rules! store_tests {
    ($($check:ident => $sqlite:ident, $postgres:ident;)*) => {$(
        on_both_backends!($sqlite, $postgres, |url| async move {
            let store = crate::support::connect(&url).await;
            $check(&store).await;
            store.close().await;
        });
    )*};
}

/// Like `store_tests!`, for checks that connect themselves: `check(url)`.
macro_rules! url_tests {
    ($($check:ident => $sqlite:ident, $postgres:ident;)*) => {$(
        on_both_backends!($sqlite, $postgres, |url| async move { $check(&url).await });
    )*};
}

mod aliases;
mod cluster;
mod connect;
mod deploy;
mod events;
mod invocations;
mod keys_and_logs;
mod retention;
mod secrets;
mod support;
