//! API keys and function logs.

use updraft_model::{LogLevel, VersionNumber};
use updraft_store::{AccessKeyRecord, ApiKeyRecord, LogFilter, LogLine, LogLineRecord, LogScope, Store, StoreError};

use crate::support::{app, function, plan};

store_tests! {
    check_api_keys => api_keys_sqlite, api_keys_postgres;
    check_access_keys => access_keys_sqlite, access_keys_postgres;
    check_log_pages => log_pages_sqlite, log_pages_postgres;
    check_log_tail => log_tail_sqlite, log_tail_postgres;
    check_log_search => log_search_sqlite, log_search_postgres;
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
            level: if i % 2 == 0 { LogLevel::Info } else { LogLevel::Error },
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
        let page = store.log_list(&LogFilter { after, ..LogFilter::function(cart.clone(), 300) }).await.unwrap();
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
    assert_eq!(store.log_list(&LogFilter::function(function("other"), 300)).await.unwrap(), []);
}

async fn check_log_tail(store: &Store) {
    let batch = log_batch();
    store.log_append(&batch).await.unwrap();
    let cart_lines = lines_of(&batch, "cart");

    let tail = store.log_list(&tail_of("cart", 0, 10)).await.unwrap();
    assert_eq!(without_ids(&tail), cart_lines[cart_lines.len() - 10..]);
    assert!(tail.windows(2).all(|pair| pair[0].id < pair[1].id), "ascending");

    // Following the tail: what came after the last line read.
    let more = [LogLine { line: "one more".to_owned(), ..cart_lines[0].clone() }];
    store.log_append(&more).await.unwrap();
    let after_tail = store.log_list(&tail_of("cart", tail[9].id, 10)).await.unwrap();
    assert_eq!(without_ids(&after_tail), more);

    // A tail longer than the log is the whole log.
    let checkout = store.log_list(&tail_of("checkout", 0, 1_000)).await.unwrap();
    assert_eq!(without_ids(&checkout), lines_of(&batch, "checkout"));
}

fn tail_of(name: &str, after: i64, limit: i64) -> LogFilter {
    LogFilter { after, tail: true, ..LogFilter::function(function(name), limit) }
}

async fn check_log_search(store: &Store) {
    store.app_deploy(&plan("shop", &[("cart", "v1"), ("checkout", "v1")])).await.unwrap();
    store.app_deploy(&plan("blog", &[("posts", "v1")])).await.unwrap();
    let batch = log_batch();
    store.log_append(&batch).await.unwrap();
    let posts =
        LogLine { function: function("posts"), line: "100% of 50_items in C:\\temp".to_owned(), ..batch[0].clone() };
    store.log_append(std::slice::from_ref(&posts)).await.unwrap();
    let search = |filter: LogFilter| async move { without_ids(&store.log_list(&filter).await.unwrap()) };
    let every = |scope: LogScope| LogFilter { scope, ..LogFilter::function(function("cart"), 10_000) };
    let matching =
        |test: &dyn Fn(&LogLine) -> bool| batch.iter().filter(|line| test(line)).cloned().collect::<Vec<_>>();

    // Scopes: one app's functions, every function.
    assert_eq!(search(every(LogScope::App(app("shop")))).await, batch);
    assert_eq!(search(every(LogScope::App(app("blog")))).await, std::slice::from_ref(&posts));
    assert_eq!(search(every(LogScope::All)).await.len(), batch.len() + 1);

    // Time, request and level.
    let window = LogFilter { since: Some(1_700_000_000_100), until: Some(1_700_000_000_200), ..every(LogScope::All) };
    assert_eq!(search(window).await, matching(&|line| (1_700_000_000_100..1_700_000_000_200).contains(&line.at)));
    let request = LogFilter { request_id: Some("request-42".to_owned()), ..LogFilter::function(function("cart"), 100) };
    let of_request = matching(&|line| line.request_id == "request-42" && line.function.as_str() == "cart");
    assert_eq!(of_request.len(), 8);
    assert_eq!(search(request).await, of_request);
    let errors = LogFilter { level: Some(LogLevel::Warn), ..every(LogScope::App(app("shop"))) };
    assert_eq!(search(errors).await, matching(&|line| line.level == LogLevel::Error));
    let fatal = LogFilter { level: Some(LogLevel::Fatal), ..every(LogScope::All) };
    assert_eq!(search(fatal).await, []);

    // Text, ignoring case, with LIKE's wildcards taken literally.
    let grep = |text: &str| LogFilter { grep: Some(text.to_owned()), ..every(LogScope::All) };
    assert_eq!(search(grep("LINE 249")).await, matching(&|line| line.line.starts_with("line 249")));
    assert_eq!(search(grep("100%")).await, std::slice::from_ref(&posts));
    assert_eq!(search(grep("50_i")).await, std::slice::from_ref(&posts));
    assert_eq!(search(grep("C:\\temp")).await, std::slice::from_ref(&posts));
    assert_eq!(search(grep("%")).await, std::slice::from_ref(&posts));
    assert_eq!(search(grep("line _")).await, []);

    // Filters combine, and the tail is the last of the matching lines.
    let combined = LogFilter {
        grep: Some("line 1".to_owned()),
        level: Some(LogLevel::Error),
        tail: true,
        ..LogFilter::function(function("checkout"), 3)
    };
    let expected = matching(&|line| {
        line.function.as_str() == "checkout" && line.line.starts_with("line 1") && line.level == LogLevel::Error
    });
    assert_eq!(search(combined).await, expected[expected.len() - 3..]);
}
