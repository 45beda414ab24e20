//! Deploys: versions and fingerprints, removed functions, ownership, atomicity,
//! rollback, deletion and concurrent deploys.

use updraft_model::VersionNumber;
use updraft_store::{DeployOutcome, DeployPlan, Store, StoreError};

use crate::support::{app, deployed, function, names, plan, planned, versions};

store_tests! {
    check_first_deploy => first_deploy_sqlite, first_deploy_postgres;
    check_unchanged_redeploy => unchanged_redeploy_sqlite, unchanged_redeploy_postgres;
    check_changed_function => changed_function_sqlite, changed_function_postgres;
    check_dropped_function => dropped_function_sqlite, dropped_function_postgres;
    check_other_apps_function => other_apps_function_sqlite, other_apps_function_postgres;
    check_rollback => rollback_sqlite, rollback_postgres;
    check_function_delete => function_delete_sqlite, function_delete_postgres;
    check_names_sort_by_bytes => names_sort_by_bytes_sqlite, names_sort_by_bytes_postgres;
    check_concurrent_deploys => concurrent_deploys_sqlite, concurrent_deploys_postgres;
    check_concurrent_deploys_of_one_app => concurrent_deploys_of_one_app_sqlite, concurrent_deploys_of_one_app_postgres;
    check_concurrent_claims_of_one_name => concurrent_claims_of_one_name_sqlite, concurrent_claims_of_one_name_postgres;
}

async fn check_first_deploy(store: &Store) {
    let shop = plan("shop", &[("cart", "v1"), ("checkout", "v1")]);
    let outcome = store.app_deploy(&shop).await.unwrap();
    assert_eq!(outcome.generation, 1);
    assert_eq!(outcome.functions, [deployed("cart", 1, true), deployed("checkout", 1, true)]);
    assert_eq!(outcome.removed, []);
    for function in ["cart", "checkout"] {
        let token = &outcome.tokens[&crate::support::function(function)];
        assert_eq!((token.id.len(), token.generation), (32, 1), "each function gets its own token identity");
    }

    let listed = store.function_list().await.unwrap();
    assert_eq!(names(&listed), ["cart", "checkout"]);
    for (record, planned) in listed.iter().zip(&shop.functions) {
        assert_eq!(record.app, app("shop"));
        assert_eq!(record.latest_version, VersionNumber(1));
        assert_eq!(record.current.function, planned.name);
        assert_eq!(record.current.version, VersionNumber(1));
        assert_eq!(record.current.artifact, planned.artifact);
        assert_eq!(record.current.config, planned.config);
        assert_eq!(record.current.fingerprint, planned.fingerprint);
        assert_eq!(store.function_get(&record.name).await.unwrap().as_ref(), Some(record));
    }
    assert_eq!(store.function_get(&function("missing")).await.unwrap(), None);
}

async fn check_unchanged_redeploy(store: &Store) {
    let shop = plan("shop", &[("cart", "v1"), ("checkout", "v1")]);
    store.app_deploy(&shop).await.unwrap();
    let before = store.function_list().await.unwrap();

    for generation in [2, 3] {
        let outcome = store.app_deploy(&shop).await.unwrap();
        assert_eq!(outcome.generation, generation);
        assert_eq!(outcome.functions, [deployed("cart", 1, false), deployed("checkout", 1, false)]);
        assert_eq!(outcome.removed, []);
    }
    assert_eq!(store.function_list().await.unwrap(), before);
    assert_eq!(versions(store, "cart").await, [1]);
}

async fn check_changed_function(store: &Store) {
    store.app_deploy(&plan("shop", &[("cart", "v1"), ("checkout", "v1")])).await.unwrap();
    let outcome = store.app_deploy(&plan("shop", &[("cart", "v2"), ("checkout", "v1")])).await.unwrap();
    assert_eq!(outcome.functions, [deployed("cart", 2, true), deployed("checkout", 1, false)]);

    let listed = store.version_list(&function("cart")).await.unwrap();
    let newest_first: Vec<_> = listed.iter().map(|v| (v.version.0, v.fingerprint.as_str())).collect();
    assert_eq!(
        newest_first,
        [(2, planned("cart", "v2").fingerprint.as_str()), (1, planned("cart", "v1").fingerprint.as_str())]
    );
    let cart = store.function_get(&function("cart")).await.unwrap().unwrap();
    assert_eq!((cart.latest_version, cart.current.version), (VersionNumber(2), VersionNumber(2)));
    assert_eq!(cart.current.artifact, planned("cart", "v2").artifact);
    assert_eq!(versions(store, "checkout").await, [1]);
}

async fn check_dropped_function(store: &Store) {
    store.app_deploy(&plan("blog", &[("posts", "v1")])).await.unwrap();
    store.app_deploy(&plan("shop", &[("cart", "v1"), ("checkout", "v1"), ("search", "v1")])).await.unwrap();

    let outcome = store.app_deploy(&plan("shop", &[("cart", "v1")])).await.unwrap();
    assert_eq!(outcome.removed, [function("checkout"), function("search")]);
    assert_eq!(names(&store.function_list().await.unwrap()), ["cart", "posts"]);
    for gone in ["checkout", "search"] {
        assert_eq!(store.function_get(&function(gone)).await.unwrap(), None);
        assert_eq!(versions(store, gone).await, Vec::<u32>::new(), "{gone}'s versions");
    }
}

async fn check_other_apps_function(store: &Store) {
    store.app_deploy(&plan("blog", &[("posts", "v1")])).await.unwrap();
    store.app_deploy(&plan("shop", &[("cart", "v1")])).await.unwrap();
    let before = store.function_list().await.unwrap();

    // `posts` comes last, so the deploy has already written the others when it fails.
    for failing in [
        plan("shop", &[("cart", "v2"), ("checkout", "v1"), ("posts", "v1")]),
        plan("news", &[("feed", "v1"), ("posts", "v1")]),
    ] {
        match store.app_deploy(&failing).await {
            Err(StoreError::FunctionOwnedByOtherApp { function: name, owner }) => {
                assert_eq!((name, owner), (function("posts"), app("blog")));
            }
            other => panic!("deploying {} should fail because blog owns posts, got {other:?}", failing.app),
        }
        assert_eq!(store.function_list().await.unwrap(), before, "after the failed deploy of {}", failing.app);
        assert_eq!(versions(store, "cart").await, [1]);
        assert_eq!(versions(store, "checkout").await, Vec::<u32>::new());
    }

    // Neither app's generation moved: shop is at its second deploy, news at its first.
    assert_eq!(store.app_deploy(&plan("shop", &[("cart", "v1")])).await.unwrap().generation, 2);
    assert_eq!(store.app_deploy(&plan("news", &[("feed", "v1")])).await.unwrap().generation, 1);
}

async fn check_rollback(store: &Store) {
    let cart = function("cart");
    store.app_deploy(&plan("shop", &[("cart", "v1")])).await.unwrap();
    store.app_deploy(&plan("shop", &[("cart", "v2")])).await.unwrap();

    let rolled_back = store.function_rollback(&cart, VersionNumber(1)).await.unwrap();
    assert_eq!((rolled_back.current.version, rolled_back.latest_version), (VersionNumber(1), VersionNumber(2)));
    assert_eq!(rolled_back.current.fingerprint, planned("cart", "v1").fingerprint);
    assert_eq!(store.function_get(&cart).await.unwrap(), Some(rolled_back.clone()));

    match store.function_rollback(&cart, VersionNumber(3)).await {
        Err(StoreError::VersionNotFound { function: name, version }) => {
            assert_eq!((name, version), (cart.clone(), VersionNumber(3)));
        }
        other => panic!("rolling back to a missing version should fail, got {other:?}"),
    }
    assert_eq!(store.function_get(&cart).await.unwrap(), Some(rolled_back));

    // Deploys compare against the version served, not the latest one.
    let same_as_served = store.app_deploy(&plan("shop", &[("cart", "v1")])).await.unwrap();
    assert_eq!(same_as_served.functions, [deployed("cart", 1, false)]);
    let same_as_latest = store.app_deploy(&plan("shop", &[("cart", "v2")])).await.unwrap();
    assert_eq!(same_as_latest.functions, [deployed("cart", 3, true)]);
    assert_eq!(versions(store, "cart").await, [3, 2, 1]);
    let served = store.function_get(&cart).await.unwrap().unwrap();
    assert_eq!((served.current.version, served.latest_version), (VersionNumber(3), VersionNumber(3)));
}

async fn check_function_delete(store: &Store) {
    store.app_deploy(&plan("shop", &[("cart", "v1"), ("checkout", "v1")])).await.unwrap();
    store.app_deploy(&plan("shop", &[("cart", "v2"), ("checkout", "v1")])).await.unwrap();

    assert!(store.function_delete(&function("cart")).await.unwrap());
    assert!(!store.function_delete(&function("cart")).await.unwrap());
    assert_eq!(store.function_get(&function("cart")).await.unwrap(), None);
    assert_eq!(versions(store, "cart").await, Vec::<u32>::new());
    assert_eq!(names(&store.function_list().await.unwrap()), ["checkout"]);
}

async fn check_concurrent_deploys(store: &Store) {
    let apps: Vec<String> = (0..8).map(|i| format!("app-{i}")).collect();
    let deploys: Vec<_> = apps
        .iter()
        .map(|name| {
            let store = store.clone();
            let plan = plan(name, &[(&format!("{name}-api"), "v1"), (&format!("{name}-worker"), "v1")]);
            tokio::spawn(async move { store.app_deploy(&plan).await })
        })
        .collect();
    for (name, deploy) in apps.iter().zip(deploys) {
        let outcome = deploy.await.unwrap().unwrap_or_else(|error| panic!("deploying {name}: {error:?}"));
        assert_eq!(outcome.generation, 1, "{name}");
    }

    let listed = store.function_list().await.unwrap();
    let mut expected: Vec<String> = apps.iter().flat_map(|a| [format!("{a}-api"), format!("{a}-worker")]).collect();
    expected.sort();
    assert_eq!(names(&listed), expected);
    for record in &listed {
        assert!(record.name.as_str().starts_with(record.app.as_str()), "{record:?}");
    }
}

async fn check_names_sort_by_bytes(store: &Store) {
    // Under a linguistic collation `api_v3` sorts before `api-v2`; by bytes it is after.
    store.app_deploy(&plan("shop", &[("apiv1", "v1"), ("api_v3", "v1"), ("api-v2", "v1")])).await.unwrap();
    assert_eq!(names(&store.function_list().await.unwrap()), ["api-v2", "api_v3", "apiv1"]);
    let outcome = store.app_deploy(&plan("shop", &[])).await.unwrap();
    assert_eq!(outcome.removed, [function("api-v2"), function("api_v3"), function("apiv1")]);
}

/// Deploys `plans` all at once, each on its own task; their results in the same order.
async fn deploy_at_once(store: &Store, plans: Vec<DeployPlan>) -> Vec<Result<DeployOutcome, StoreError>> {
    let tasks: Vec<_> = plans
        .into_iter()
        .map(|plan| {
            let store = store.clone();
            tokio::spawn(async move { store.app_deploy(&plan).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

async fn check_concurrent_deploys_of_one_app(store: &Store) {
    store.app_deploy(&plan("shop", &[("cart", "v0")])).await.unwrap();
    let builds: Vec<String> = (1..=8).map(|i| format!("v{i}")).collect();
    let plans = builds.iter().map(|build| plan("shop", &[("cart", build)])).collect();

    let mut generations = Vec::new();
    for result in deploy_at_once(store, plans).await {
        let outcome = result.unwrap_or_else(|error| panic!("a deploy that raced another failed: {error:?}"));
        generations.push(outcome.generation);
    }
    generations.sort();
    assert_eq!(generations, (2..=9).collect::<Vec<_>>(), "each deploy has its own generation");
    assert_eq!(versions(store, "cart").await, (1..=9).rev().collect::<Vec<_>>());
    let cart = store.function_get(&function("cart")).await.unwrap().unwrap();
    assert_eq!((cart.current.version, cart.latest_version), (VersionNumber(9), VersionNumber(9)));
}

async fn check_concurrent_claims_of_one_name(store: &Store) {
    let apps: Vec<String> = (0..8).map(|i| format!("app-{i}")).collect();
    let plans = apps.iter().map(|name| plan(name, &[(&format!("{name}-own"), "v1"), ("shared", "v1")])).collect();

    let mut winners = Vec::new();
    let mut owners = Vec::new();
    for (name, result) in apps.iter().zip(deploy_at_once(store, plans).await) {
        match result {
            Ok(_) => winners.push(name.as_str()),
            Err(StoreError::FunctionOwnedByOtherApp { function: shared, owner }) => {
                assert_eq!(shared, function("shared"));
                owners.push(owner);
            }
            Err(error) => panic!("deploying {name}: {error:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "one app gets the name");
    assert!(owners.iter().all(|owner| owner.as_str() == winners[0]), "{owners:?} should all be {winners:?}");
    let expected = [format!("{}-own", winners[0]), "shared".to_owned()];
    assert_eq!(names(&store.function_list().await.unwrap()), expected);
}
