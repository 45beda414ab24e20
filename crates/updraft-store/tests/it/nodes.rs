//! The cluster's members: joining raises the epoch, a heartbeat of an older epoch is
//! refused, load and leaving are recorded, and silence is measured on the database's clock.

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
