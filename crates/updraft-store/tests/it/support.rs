//! Fresh databases for tests (a SQLite file in a temp dir, or a new PostgreSQL database
//! that is dropped afterwards) and the plans the checks deploy.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};
use updraft_model::{
    AppName, ArtifactDigest, ByteSize, FunctionConfig, FunctionName, HttpAuth, HttpTrigger, MethodSet, RoutePattern,
    RuntimeKind, ServerSpec, Trigger, VersionNumber,
};
use updraft_store::{DeployPlan, DeployedFunction, FunctionRecord, PlannedFunction, Store};

const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for one test.
pub enum TestDb {
    Sqlite { url: String, _dir: tempfile::TempDir },
    Postgres { url: String, admin_url: String, name: String },
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        TestDb::Sqlite { url: Store::sqlite_url(&dir.path().join("updraft.db")), _dir: dir }
    }

    /// A new database on the PostgreSQL server of `UPDRAFT_TEST_POSTGRES_URL` (an admin
    /// URL); `None` when the server is unreachable and `UPDRAFT_SKIP_POSTGRES=1`.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url =
            std::env::var("UPDRAFT_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_ADMIN_URL.into());
        let mut admin = match admin_connect(&admin_url).await {
            Ok(admin) => admin,
            Err(error) if std::env::var("UPDRAFT_SKIP_POSTGRES").is_ok_and(|v| v == "1") => {
                eprintln!("skipped: PostgreSQL at {admin_url} is unreachable ({error}) and UPDRAFT_SKIP_POSTGRES=1");
                return None;
            }
            Err(error) => panic!(
                "PostgreSQL at {admin_url} is unreachable: {error}\n\
                 Start PostgreSQL (user postgres, trust auth, on 127.0.0.1:5432), or set \
                 UPDRAFT_TEST_POSTGRES_URL to the URL of a database where you may CREATE DATABASE, \
                 or set UPDRAFT_SKIP_POSTGRES=1 to skip the PostgreSQL tests."
            ),
        };
        let name = format!("updraft_test_{}", uuid::Uuid::new_v4().simple());
        // A linguistic collation, like the en_US.UTF-8 most servers default to, so that a
        // query relying on PostgreSQL sorting names the way SQLite does fails here. Servers
        // without ICU get their default.
        let icu = format!("CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'");
        if admin.execute(icu.as_str()).await.is_err() {
            admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        }
        admin.close().await.unwrap();
        Some(TestDb::Postgres { url: with_database(&admin_url, &name), admin_url, name })
    }

    /// Runs `test(url)` and then deletes the database, also when the test panics.
    pub async fn run<F, Fut>(self, test: F)
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let url = match &self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url.clone(),
        };
        let outcome = tokio::spawn(test(url)).await;
        if let TestDb::Postgres { admin_url, name, .. } = &self {
            drop_database(admin_url, name).await;
        }
        if let Err(error) = outcome {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}

async fn admin_connect(url: &str) -> Result<PgConnection, String> {
    match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url)).await {
        Ok(connection) => connection.map_err(|error| error.to_string()),
        Err(_) => Err("no answer within 10 s".to_owned()),
    }
}

/// Best effort: a database left behind is only clutter.
async fn drop_database(admin_url: &str, name: &str) {
    let dropped = match admin_connect(admin_url).await {
        Ok(mut admin) => admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await
            .map_err(|e| e.to_string()),
        Err(error) => Err(error),
    };
    if let Err(error) = dropped {
        eprintln!("could not drop test database {name}: {error}");
    }
}

/// `admin_url` with its database replaced by `database`, keeping any `?options`.
fn with_database(admin_url: &str, database: &str) -> String {
    let (base, query) = admin_url.split_once('?').map_or((admin_url, None), |(base, query)| (base, Some(query)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = base[authority_start..].find('/').map_or(base, |i| &base[..authority_start + i]);
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

pub async fn connect(url: &str) -> Store {
    Store::connect(url).await.unwrap_or_else(|error| panic!("connecting to {url}: {error:?}"))
}

pub fn function(name: &str) -> FunctionName {
    name.parse().unwrap()
}

pub fn app(name: &str) -> AppName {
    name.parse().unwrap()
}

/// A plan for `app` with one function per `(name, build)`. The build stands for the
/// artifact's bytes: another build is another artifact, and so another fingerprint.
pub fn plan(app_name: &str, functions: &[(&str, &str)]) -> DeployPlan {
    DeployPlan {
        app: app(app_name),
        manifest: format!("[app]\nname = \"{app_name}\"\n"),
        functions: functions.iter().map(|(name, build)| planned(name, build)).collect(),
        canary: None,
    }
}

pub fn planned(name: &str, build: &str) -> PlannedFunction {
    let config = config(name);
    let artifact = ArtifactDigest::of(format!("{name} {build}").as_bytes());
    // What the platform does: config and artifact together decide whether anything changed.
    let fingerprint = format!("{}-{}", config.fingerprint(), artifact.as_str());
    PlannedFunction { name: function(name), artifact, config, fingerprint, aliases: Default::default() }
}

/// A config with every field set (and some to non-ASCII text), so that a field the store
/// drops or mangles shows up as a difference.
pub fn config(name: &str) -> FunctionConfig {
    FunctionConfig {
        runtime: RuntimeKind::Python3,
        handler: Some(format!("{name}.handler")),
        server: Some(ServerSpec {
            command: format!("gunicorn {name}:app --bind 127.0.0.1:$PORT # ünï"),
            readiness_path: "/healthz".to_owned(),
            concurrency_per_instance: 8,
        }),
        memory: ByteSize::mib(256),
        timeout: Duration::from_millis(2_500),
        concurrency: Some(7),
        env: BTreeMap::from([
            ("FUNCTION".to_owned(), name.to_owned()),
            ("GREETING".to_owned(), "grüß dich, \"quoted\" 'text'\n".to_owned()),
        ]),
        secret_env: BTreeMap::from([("STRIPE_KEY".to_owned(), "stripe".parse().unwrap())]),
        allowed_outbound_hosts: vec!["api.example.com".to_owned(), "*.example.org".to_owned()],
        instance_reuse: true,
        concurrency_per_instance: 1,
        idle_timeout: std::time::Duration::from_secs(600),
        min_instances: 0,
        retries: 2,
        max_event_age: Duration::from_secs(6 * 3600),
        on_success: None,
        on_failure: None,
        dead_letter_topic: None,
        publishes: Vec::new(),
        starts: Vec::new(),
        triggers: vec![
            Trigger::Http(HttpTrigger {
                methods: MethodSet { methods: vec!["GET".to_owned(), "POST".to_owned()] },
                route: RoutePattern::parse(&format!("/{name}/{{id}}")).unwrap(),
                auth: HttpAuth::Key,
                alias: None,
                payload_format: Default::default(),
            }),
            Trigger::Http(HttpTrigger {
                methods: MethodSet::any(),
                route: RoutePattern::parse(&format!("/{name}/static/{{*path}}")).unwrap(),
                auth: HttpAuth::Public,
                alias: None,
                payload_format: Default::default(),
            }),
        ],
        description: None,
        lambda_runtime: None,
        recursive_loop: Default::default(),
    }
}

pub fn deployed(name: &str, version: u32, changed: bool) -> DeployedFunction {
    DeployedFunction { name: function(name), version: VersionNumber(version), changed }
}

/// The names of `functions`, in order.
pub fn names(functions: &[FunctionRecord]) -> Vec<&str> {
    functions.iter().map(|f| f.name.as_str()).collect()
}

/// The version numbers of a function, as `version_list` orders them.
pub async fn versions(store: &Store, name: &str) -> Vec<u32> {
    store.version_list(&function(name)).await.unwrap().iter().map(|v| v.version.0).collect()
}

#[test]
fn admin_urls_point_at_the_test_database() {
    let cases = [
        ("postgres://postgres@127.0.0.1:5432/postgres", "postgres://postgres@127.0.0.1:5432/t"),
        ("postgres://u:p@db/admin?sslmode=disable", "postgres://u:p@db/t?sslmode=disable"),
        ("postgresql://u@db:5433", "postgresql://u@db:5433/t"),
    ];
    for (admin, expected) in cases {
        assert_eq!(with_database(admin, "t"), expected, "{admin}");
    }
}
