//! API keys and function logs.

use updraft_model::VersionNumber;
use updraft_store::{AccessKeyRecord, ApiKeyRecord, LogLine, LogLineRecord, Store, StoreError};

use crate::support::function;

store_tests! {
    check_api_keys => api_keys_sqlite, api_keys_postgres;
    check_access_keys => access_keys_sqlite, access_keys_postgres;
    check_log_pages => log_pages_sqlite, log_pages_postgres;
    check_log_tail => log_tail_sqlite, log_tail_postgres;
}

fn key(id: &str, secret_hash: &str, created_at: i64) -> ApiKeyRecord {
    ApiKeyRecord { id: id.to_owned(), secret_hash: secret_hash.to_owned(), role: "admin".to_owned(), created_at }
}

async fn check_api_keys(store: &Store) {
    assert_eq!(store.api_key_list().await.unwrap(), []);
    let keys = [key("key-a", "hash-a", 1_000), key("key-b", "hash-b", 2_000)];
    for key in &keys {
        store.api_key_insert(key).await.unwrap();
    }
    assert_eq!(store.api_key_list().await.unwrap(), keys);

    let same_secret = key("key-c", "hash-a", 3_000);
    assert!(matches!(store.api_key_insert(&same_secret).await, Err(StoreError::Query(_))));
    assert_eq!(store.api_key_list().await.unwrap(), keys);
}

async fn check_access_keys(store: &Store) {
    assert_eq!(store.access_key_list().await.unwrap(), []);
    let key = |id: &str, at| AccessKeyRecord {
        id: id.to_owned(),
        secret_sealed: format!("sealed-{id}"),
        role: "admin".to_owned(),
        created_at: at,
    };
    let keys = [key("AKUPAAAA", 1_000), key("AKUPBBBB", 2_000)];
    for key in &keys {
        store.access_key_insert(key).await.unwrap();
    }
    assert_eq!(store.access_key_list().await.unwrap(), keys);
    assert!(matches!(store.access_key_insert(&keys[0]).await, Err(StoreError::Query(_))), "ids are unique");
    assert!(store.access_key_delete("AKUPAAAA").await.unwrap());
    assert!(!store.access_key_delete("AKUPAAAA").await.unwrap());
    assert_eq!(store.access_key_list().await.unwrap(), keys[1..]);
}

/// One batch of 2,500 lines: every fifth from `checkout`, the others from `cart`.
fn log_batch() -> Vec<LogLine> {
    (0..2_500)
        .map(|i| LogLine {
            function: function(if i % 5 == 4 { "checkout" } else { "cart" }),
            version: VersionNumber(1 + i / 1_000),
            request_id: format!("request-{}", i / 10),
            at: 1_700_000_000_000 + i64::from(i),
            stream: if i % 2 == 0 { "stdout" } else { "stderr" }.to_owned(),
            line: format!("line {i}"),
        })
        .collect()
}

fn lines_of(batch: &[LogLine], name: &str) -> Vec<LogLine> {
    batch.iter().filter(|line| line.function.as_str() == name).cloned().collect()
}

fn without_ids(records: &[LogLineRecord]) -> Vec<LogLine> {
    records.iter().map(|record| record.line.clone()).collect()
}

async fn check_log_pages(store: &Store) {
    let batch = log_batch();
    store.log_append(&batch).await.unwrap();

    let cart = function("cart");
    let mut read: Vec<LogLineRecord> = Vec::new();
    let mut pages = 0;
    loop {
        let after = read.last().map_or(0, |record| record.id);
        let page = store.log_list(&cart, after, 300, false).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 300);
        read.extend(page);
        pages += 1;
    }
    assert_eq!(pages, 7, "2,000 lines in pages of 300");
    assert!(read.windows(2).all(|pair| pair[0].id < pair[1].id), "ids increase");
    assert_eq!(without_ids(&read), lines_of(&batch, "cart"));
    assert_eq!(store.log_list(&function("other"), 0, 300, false).await.unwrap(), []);
}

async fn check_log_tail(store: &Store) {
    let batch = log_batch();
    store.log_append(&batch).await.unwrap();
    let cart_lines = lines_of(&batch, "cart");

    let tail = store.log_list(&function("cart"), 0, 10, true).await.unwrap();
    assert_eq!(without_ids(&tail), cart_lines[cart_lines.len() - 10..]);
    assert!(tail.windows(2).all(|pair| pair[0].id < pair[1].id), "ascending");

    // Following the tail: what came after the last line read.
    let more = [LogLine { line: "one more".to_owned(), ..cart_lines[0].clone() }];
    store.log_append(&more).await.unwrap();
    let after_tail = store.log_list(&function("cart"), tail[9].id, 10, true).await.unwrap();
    assert_eq!(without_ids(&after_tail), more);

    // A tail longer than the log is the whole log.
    let checkout = store.log_list(&function("checkout"), 0, 1_000, true).await.unwrap();
    assert_eq!(without_ids(&checkout), lines_of(&batch, "checkout"));
}
