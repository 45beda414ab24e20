//! What a cluster shares through the database: its members (joining raises the epoch, a
//! heartbeat of an older epoch is refused, silence is measured on the database's clock),
//! the control-plane change counter and its notification, and artifacts.

use std::time::Duration;

use updraft_store::{NodeLoad, Store};

store_tests! {
    check_join_heartbeat_leave => nodes_join_heartbeat_and_leave_sqlite, nodes_join_heartbeat_and_leave_postgres;
    check_silence => silence_is_measured_by_the_database_sqlite, silence_is_measured_by_the_database_postgres;
}

async fn check_join_heartbeat_leave(store: &Store) {
    let first = store.node_join("node-a", "http://127.0.0.1:7001", "1.0.0").await.unwrap();
    store.node_join("node-b", "http://127.0.0.1:7002", "1.0.0").await.unwrap();
    let load = NodeLoad { in_flight: 3, instances: 5, warm_functions: vec!["cart".parse().unwrap()] };
    assert!(store.node_heartbeat("node-a", first, &load).await.unwrap());

    let nodes = store.node_list().await.unwrap();
    let ids: Vec<&str> = nodes.iter().map(|node| node.id.as_str()).collect();
    assert_eq!(ids, ["node-a", "node-b"]);
    assert_eq!(nodes[0].load, load);
    assert_eq!(nodes[0].address, "http://127.0.0.1:7001");
    assert_eq!(nodes[0].left_at, None);

    // A restart (or a second process on the same identity) joins with a newer epoch:
    // the old one's heartbeats no longer land, and its load is forgotten.
    let second = store.node_join("node-a", "http://127.0.0.1:7003", "1.1.0").await.unwrap();
    assert_eq!(second, first + 1);
    assert!(!store.node_heartbeat("node-a", first, &load).await.unwrap());
    let node = store.node_list().await.unwrap().remove(0);
    assert_eq!((node.address.as_str(), node.version.as_str()), ("http://127.0.0.1:7003", "1.1.0"));
    assert_eq!(node.load, NodeLoad::default());

    // Leaving under an old epoch changes nothing; under the current one it is recorded.
    store.node_leave("node-a", first).await.unwrap();
    assert_eq!(store.node_list().await.unwrap()[0].left_at, None);
    store.node_leave("node-a", second).await.unwrap();
    let node = store.node_list().await.unwrap().remove(0);
    assert!(node.left_at.is_some_and(|left| left >= node.started_at), "{node:?}");
}

async fn check_silence(store: &Store) {
    let epoch = store.node_join("quiet", "http://127.0.0.1:7001", "1.0.0").await.unwrap();
    let joined = store.node_list().await.unwrap().remove(0);
    assert!(joined.silent_for < 1_000, "a node that just joined is not silent: {joined:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = store.node_list().await.unwrap().remove(0);
    assert!(later.silent_for >= 250, "300 ms without a heartbeat: {later:?}");
    assert!(store.node_heartbeat("quiet", epoch, &NodeLoad::default()).await.unwrap());
    let beat = store.node_list().await.unwrap().remove(0);
    assert!(beat.silent_for < later.silent_for && beat.last_seen > joined.last_seen, "{beat:?}");
}

store_tests! {
    check_control_changes => control_changes_are_counted_sqlite, control_changes_are_counted_postgres;
    check_shared_artifacts => artifacts_are_shared_through_the_database_sqlite, artifacts_are_shared_through_the_database_postgres;
}

async fn check_control_changes(store: &Store) {
    let start = store.control_seq().await.unwrap();
    store.app_deploy(&crate::support::plan("shop", &[("cart", "v1")])).await.unwrap();
    let deployed = store.control_seq().await.unwrap();
    assert!(deployed > start, "a deploy moves the counter: {start} -> {deployed}");
    store.secret_put(&"db-password".parse().unwrap(), "sealed").await.unwrap();
    let secret = store.control_seq().await.unwrap();
    assert!(secret > deployed, "a secret moves it: {deployed} -> {secret}");
    // What happens on the invoke path does not: records, logs, events.
    store.invocation_append(&[crate::invocations::record(1)]).await.unwrap();
    store.node_join("n", "http://127.0.0.1:1", "1").await.unwrap();
    assert_eq!(store.control_seq().await.unwrap(), secret);
}

async fn check_shared_artifacts(store: &Store) {
    use updraft_store::{ArtifactStore, SharedArtifactError};
    // 2.5 MiB: three chunks, the last one short.
    let bytes: Vec<u8> = (0..(5 << 19)).map(|i: u32| (i % 251) as u8).collect();
    let here = tempfile::tempdir().unwrap();
    let there = tempfile::tempdir().unwrap();
    let (here, there) = (ArtifactStore::open(here.path()).unwrap(), ArtifactStore::open(there.path()).unwrap());
    let mut upload = here.upload().unwrap();
    upload.write(&bytes).unwrap();
    let digest = updraft_model::ArtifactDigest::of(&bytes);
    upload.finish(&digest).unwrap();

    assert!(!store.artifact_is_shared(&digest).await.unwrap());
    store.artifact_share(&digest, &here.path(&digest)).await.unwrap();
    store.artifact_share(&digest, &here.path(&digest)).await.unwrap();
    assert!(store.artifact_is_shared(&digest).await.unwrap());

    // Another node's folder gets the same bytes, checked against the digest.
    assert!(!there.contains(&digest));
    store.artifact_fetch(&digest, there.upload().unwrap()).await.unwrap();
    assert_eq!(std::fs::read(there.path(&digest)).unwrap(), bytes);

    let unknown = updraft_model::ArtifactDigest::of(b"never uploaded");
    match store.artifact_fetch(&unknown, there.upload().unwrap()).await {
        Err(SharedArtifactError::Missing { digest }) => assert_eq!(digest, unknown),
        other => panic!("fetching an artifact nobody shared: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_hears_another_connections_change_at_commit() {
    let Some(db) = crate::support::TestDb::postgres().await else { return };
    db.run(|url| async move {
        let store = crate::support::connect(&url).await;
        let other = crate::support::connect(&url).await;
        let mut listener = store.control_listen().await.unwrap().expect("PostgreSQL listens");
        assert!(!listener.wait(Duration::from_millis(100)).await, "nothing changed yet");
        other.app_deploy(&crate::support::plan("shop", &[("cart", "v1")])).await.unwrap();
        assert!(listener.wait(Duration::from_secs(10)).await, "the deploy's commit notifies");
        let sqlite = tempfile::tempdir().unwrap();
        let embedded = crate::support::connect(&Store::sqlite_url(&sqlite.path().join("x.db"))).await;
        assert!(embedded.control_listen().await.unwrap().is_none(), "SQLite has one writer: nothing to hear");
        store.close().await;
        other.close().await;
    })
    .await;
}

store_tests! {
    check_permit_grants => permit_grants_stay_within_the_limit_sqlite, permit_grants_stay_within_the_limit_postgres;
}

async fn check_permit_grants(store: &Store) {
    const LONG: i64 = 60_000;
    assert_eq!(store.permit_borrow("function:cart", "a", 3, 5, LONG).await.unwrap(), 3);
    assert_eq!(store.permit_borrow("function:cart", "b", 5, 5, LONG).await.unwrap(), 2);
    assert_eq!(store.permit_borrow("function:cart", "b", 1, 5, LONG).await.unwrap(), 0, "the limit is taken");
    assert_eq!(store.permit_borrow("pool", "b", 4, 5, LONG).await.unwrap(), 4, "another scope is its own");

    // Giving back makes room for others.
    store.permit_renew("a", &[("function:cart".to_owned(), 1)], LONG).await.unwrap();
    assert_eq!(store.permit_borrow("function:cart", "b", 5, 5, LONG).await.unwrap(), 2);

    // A grant not renewed in time expires, and others may take its permits.
    store.permit_renew("a", &[("function:cart".to_owned(), 1)], 50).await.unwrap();
    assert_eq!(store.permit_borrow("function:cart", "c", 1, 5, LONG).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.permit_borrow("function:cart", "c", 1, 5, LONG).await.unwrap(), 1);

    // A stopping node gives back everything.
    store.permit_release_all("b").await.unwrap();
    assert_eq!(store.permit_borrow("pool", "c", 5, 5, LONG).await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_borrowers_are_granted_exactly_the_limit_on_postgres() {
    let Some(db) = crate::support::TestDb::postgres().await else { return };
    db.run(|url| async move {
        let mut stores = Vec::new();
        for _ in 0..4 {
            stores.push(crate::support::connect(&url).await);
        }
        let mut borrows = tokio::task::JoinSet::new();
        for i in 0..40 {
            let store = stores[i % stores.len()].clone();
            borrows.spawn(async move {
                store.permit_borrow("function:hot", &format!("node-{i}"), 1, 7, 60_000).await.unwrap()
            });
        }
        let granted: u32 = borrows.join_all().await.into_iter().sum();
        assert_eq!(granted, 7, "40 nodes racing for a limit of 7");
        for store in stores {
            store.close().await;
        }
    })
    .await;
}
