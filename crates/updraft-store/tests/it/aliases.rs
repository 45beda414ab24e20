//! Aliases: made once, changed only from the revision read, listed, deleted with their
//! function, and seen by the cluster's other nodes (the change counter moves).

use std::collections::BTreeMap;

use updraft_model::{AliasName, VersionNumber};
use updraft_store::{AliasRecord, Store, StoreError};

use crate::support::{function, plan};

store_tests! {
    check_alias_lifecycle => alias_lifecycle_sqlite, alias_lifecycle_postgres;
}

fn alias(name: &str, version: Option<u32>, routing: &[(u32, f64)], revision: &str) -> AliasRecord {
    AliasRecord {
        function: function("cart"),
        name: AliasName::new(name).unwrap(),
        version: version.map(VersionNumber),
        routing: routing.iter().map(|(v, w)| (VersionNumber(*v), *w)).collect::<BTreeMap<_, _>>(),
        description: "what users get — ünïcode".into(),
        revision: revision.into(),
        updated_at: 1_700_000_000_000,
    }
}

async fn check_alias_lifecycle(store: &Store) {
    store.app_deploy(&plan("shop", &[("cart", "v1"), ("checkout", "v1")])).await.unwrap();
    store.app_deploy(&plan("shop", &[("cart", "v2"), ("checkout", "v1")])).await.unwrap();
    let before = store.control_seq().await.unwrap();

    let live = alias("live", Some(1), &[(2, 0.1)], "r1");
    store.alias_put(&live, None).await.unwrap();
    store.alias_put(&alias("latest", None, &[], "r2"), None).await.unwrap();
    assert_eq!(store.alias_list().await.unwrap(), vec![alias("latest", None, &[], "r2"), live.clone()]);
    assert!(store.control_seq().await.unwrap() > before, "other nodes must see the change");

    // A second alias of the same name is refused, as is a change from a stale revision.
    let taken = store.alias_put(&alias("live", Some(2), &[], "r3"), None).await;
    assert!(matches!(taken, Err(StoreError::AliasConflict { .. })), "{taken:?}");
    let stale = store.alias_put(&alias("live", Some(2), &[], "r3"), Some("r0")).await;
    assert!(matches!(stale, Err(StoreError::AliasConflict { .. })), "{stale:?}");
    let moved = alias("live", Some(2), &[], "r3");
    store.alias_put(&moved, Some("r1")).await.unwrap();
    assert_eq!(store.alias_list().await.unwrap()[1], moved);

    assert!(store.alias_delete(&function("cart"), &AliasName::new("latest").unwrap()).await.unwrap());
    assert!(!store.alias_delete(&function("cart"), &AliasName::new("latest").unwrap()).await.unwrap());
    // A function's aliases go with it.
    store.function_delete(&function("cart")).await.unwrap();
    assert_eq!(store.alias_list().await.unwrap(), Vec::new());
}
