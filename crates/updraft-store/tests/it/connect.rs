//! Connecting: URLs the store refuses, and reopening a database that has state.

use updraft_store::{Backend, Store, StoreError};

use crate::support::{connect, deployed, names, plan, versions};

url_tests! {
    check_reopen => reopen_sqlite, reopen_postgres;
}

#[tokio::test]
async fn other_databases_are_refused() {
    match Store::connect("mysql://x").await {
        Err(StoreError::UnsupportedUrl { url }) => assert_eq!(url, "mysql://x"),
        other => panic!("a mysql URL should be refused, got {other:?}"),
    }
}

async fn check_reopen(url: &str) {
    let store = connect(url).await;
    let expected = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
    assert_eq!(store.backend(), expected);
    store.app_deploy(&plan("shop", &[("cart", "v1"), ("checkout", "v1")])).await.unwrap();
    store.app_deploy(&plan("shop", &[("cart", "v2"), ("checkout", "v1")])).await.unwrap();
    let before = store.function_list().await.unwrap();
    store.close().await;

    // Connecting again runs the migrations again, which must find nothing to do.
    for _ in 0..2 {
        let store = connect(url).await;
        assert_eq!(store.function_list().await.unwrap(), before);
        assert_eq!(versions(&store, "cart").await, [2, 1]);
        store.close().await;
    }

    let store = connect(url).await;
    let outcome = store.app_deploy(&plan("shop", &[("cart", "v2"), ("checkout", "v1")])).await.unwrap();
    assert_eq!(outcome.generation, 3);
    assert_eq!(outcome.functions, [deployed("cart", 2, false), deployed("checkout", 1, false)]);
    assert_eq!(names(&store.function_list().await.unwrap()), ["cart", "checkout"]);
    store.close().await;
}
