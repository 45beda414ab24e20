//! Sealed values: secrets, server keys, function token generations, and re-sealing
//! every sealed value in one transaction.

use updraft_model::{FunctionName, SecretName};
use updraft_store::{AccessKeyRecord, SealedKind, SealedValue, Store, StoreError, TokenIdentity};

use crate::support::{function, plan};

store_tests! {
    check_secrets => secrets_sqlite, secrets_postgres;
    check_function_tokens => function_tokens_sqlite, function_tokens_postgres;
    check_resealing => resealing_sqlite, resealing_postgres;
}

fn secret(name: &str) -> SecretName {
    name.parse().unwrap()
}

async fn check_secrets(store: &Store) {
    assert!(store.secret_put(&secret("stripe"), "sealed-1").await.unwrap(), "a new secret");
    assert!(store.secret_put(&secret("db.password"), "sealed-2").await.unwrap());
    assert!(!store.secret_put(&secret("stripe"), "sealed-3").await.unwrap(), "replaced, not new");
    let listed = store.secret_list().await.unwrap();
    let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["db.password", "stripe"]);
    assert!(listed[1].updated_at >= listed[1].created_at);
    let mut sealed = store.secret_sealed_list().await.unwrap();
    sealed.sort();
    assert_eq!(sealed, [(secret("db.password"), "sealed-2".to_owned()), (secret("stripe"), "sealed-3".to_owned())]);
    assert!(store.secret_delete(&secret("stripe")).await.unwrap());
    assert!(!store.secret_delete(&secret("stripe")).await.unwrap());

    // A server key is made once; a second maker gets the first one's.
    let first = store.server_key_get_or_insert("tokens", || "key-1".to_owned()).await.unwrap();
    let second = store.server_key_get_or_insert("tokens", || "key-2".to_owned()).await.unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("key-1", "key-1"));
}

/// What `name`'s tokens are signed over, if it exists.
async fn token(store: &Store, name: &FunctionName) -> Option<TokenIdentity> {
    store.function_get(name).await.unwrap().map(|function| function.token)
}

async fn check_function_tokens(store: &Store) {
    let outcome = store.app_deploy(&plan("shop", &[("cart", "v1")])).await.unwrap();
    let cart = function("cart");
    let made = token(store, &cart).await.unwrap();
    assert_eq!(made.generation, 1);
    assert_eq!(made.id.len(), 32);
    assert_eq!(outcome.tokens[&cart], made, "a deploy says what it committed");
    assert_eq!(store.function_token_rotate(&cart).await.unwrap(), 2);
    assert!(matches!(store.function_token_rotate(&function("nope")).await, Err(StoreError::FunctionNotFound { .. })));
    // A redeploy keeps the identity; a function deleted and made again gets a new one.
    store.app_deploy(&plan("shop", &[("cart", "v2")])).await.unwrap();
    assert_eq!(token(store, &cart).await.unwrap().generation, 2);
    store.function_delete(&cart).await.unwrap();
    assert_eq!(token(store, &cart).await, None);
    store.app_deploy(&plan("shop", &[("cart", "v1")])).await.unwrap();
    let remade = token(store, &cart).await.unwrap();
    assert_eq!(remade.generation, 1);
    assert_ne!(remade.id, made.id);
}

async fn check_resealing(store: &Store) {
    store
        .access_key_insert(&AccessKeyRecord {
            id: "AKUPAAAA".into(),
            secret_sealed: "old-a".into(),
            role: "admin".into(),
            created_at: 1,
        })
        .await
        .unwrap();
    store.secret_put(&secret("stripe"), "old-s").await.unwrap();
    store.server_key_get_or_insert("tokens", || "old-t".to_owned()).await.unwrap();
    let mut values = store.sealed_list().await.unwrap();
    assert_eq!(values.len(), 3);
    for value in &mut values {
        value.sealed = value.sealed.replace("old", "new");
    }
    store.sealed_replace(&values, None).await.unwrap();
    assert_eq!(store.access_key_list().await.unwrap()[0].secret_sealed, "new-a");
    assert_eq!(store.secret_sealed_list().await.unwrap()[0].1, "new-s");
    assert_eq!(store.server_key_get_or_insert("tokens", || unreachable!()).await.unwrap(), "new-t");

    // All or nothing: a value whose row is gone undoes the others.
    let gone = SealedValue { kind: SealedKind::Secret, id: "deleted".into(), sealed: "x".into() };
    let mut batch = store.sealed_list().await.unwrap();
    for value in &mut batch {
        value.sealed = "newer".into();
    }
    batch.push(gone);
    assert!(store.sealed_replace(&batch, None).await.is_err());
    assert_eq!(store.secret_sealed_list().await.unwrap()[0].1, "new-s");
}
