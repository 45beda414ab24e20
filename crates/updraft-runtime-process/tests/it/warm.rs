//! Pre-started sandboxes: a cold start of a managed runtime takes a sandbox whose
//! interpreter is already up, gives it the function, and the function runs exactly as
//! in a sandbox built for it.

use std::time::{Duration, Instant};

use serde_json::json;
use updraft_model::RuntimeKind as Kind;

use crate::harness::{Function, bundle, harness, harness_with, instance_config, invoke, json};
use crate::hostile::{PROBE, assert_sandboxed, attack, refused};

/// Waits until `count` sandboxes of `kind` are ready.
async fn ready(h: &crate::harness::Harness, kind: Kind, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.runtime.warm_sandboxes_ready(kind) < count {
        assert!(Instant::now() < deadline, "no pre-started {kind} sandbox within 20 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_cold_start_takes_a_pre_started_sandbox_that_is_as_closed_as_any() {
    let h = harness().await;
    let zip = bundle(h.dir.path(), "warm", &[("probe.py", PROBE, false)]);
    let prepared = h.prepare("warm", &Function::python("probe.handler"), &zip).await.unwrap();
    ready(&h, Kind::Python3, 1).await;
    // Let the sandbox age, so its start is told apart from this one's.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let asked = Instant::now();
    let mut instance = prepared.create(&instance_config(128 << 20)).await.unwrap();
    let me = json(&invoke(&mut instance, "w-1", json!({"attack": "whoami"})).await);
    let since_asked = asked.elapsed().as_millis() as i64;
    assert!(
        me["age_ms"].as_i64().unwrap() > since_asked,
        "the runtime started before the instance was asked for: {me}, asked {since_asked} ms ago"
    );
    assert_eq!(me["function"], "warm", "it was given its function's environment");
    assert_eq!(me["cwd"], "/var/task");

    // The same sandbox as one built for the function.
    assert_sandboxed(&mut instance).await;
    let written = attack(&mut instance, json!({"attack": "write", "path": "/var/task/probe.py"})).await;
    assert!(refused(&written) && written["error"].as_str().unwrap().contains("Read-only"), "{written}");
    let shell = attack(&mut instance, json!({"attack": "exec", "argv": ["/bin/sh", "-c", "true"]})).await;
    assert!(refused(&shell), "{shell}");
    let network = attack(&mut instance, json!({"attack": "connect", "host": "127.0.0.1", "port": 5432})).await;
    assert!(refused(&network), "{network}");
    let bundles = attack(&mut instance, json!({"attack": "read", "path": "/proc/1/root/etc/hostname"})).await;
    assert!(refused(&bundles), "init's view is not the runtime's: {bundles}");

    // Its memory limit is the function's, not the pre-started sandbox's.
    let invoked = invoke(&mut instance, "w-oom", json!({"attack": "allocate", "mib": 512})).await;
    assert!(invoked.result.is_err() || refused(&json(&invoked)), "512 MiB fit in a 128 MiB function");

    // Another is started in its place.
    ready(&h, Kind::Python3, 1).await;
}

#[tokio::test]
async fn node_functions_start_from_pre_started_sandboxes_too() {
    let h = harness().await;
    let code =
        "exports.handler = async (event, context) => ({ name: context.functionName, cwd: process.cwd(), event });\n";
    let zip = bundle(h.dir.path(), "warm-node", &[("index.js", code, false)]);
    let prepared = h.prepare("warm-node", &Function::node("index.handler"), &zip).await.unwrap();
    ready(&h, Kind::Nodejs, 1).await;
    let mut instance = prepared.create(&instance_config(128 << 20)).await.unwrap();
    let body = json(&invoke(&mut instance, "wn-1", json!({"x": 1})).await);
    assert_eq!(body, json!({"name": "warm-node", "cwd": "/var/task", "event": {"x": 1}}));
}

/// Waits until exactly `count` sandboxes of `kind` are ready and none is starting.
async fn settled_at(h: &crate::harness::Harness, kind: Kind, count: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while h.runtime.warm_sandboxes_ready(kind) != count {
        assert!(
            Instant::now() < deadline,
            "the {kind} pool did not settle at {count} within {within:?} (it has {})",
            h.runtime.warm_sandboxes_ready(kind)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_burst_of_cold_starts_grows_the_pool_and_a_quiet_window_shrinks_it() {
    let h = harness_with(|config| {
        config.warm_sandboxes = 1;
        config.warm_sandboxes_max = 3;
        config.warm_demand_window = Duration::from_secs(2);
    })
    .await;
    let zip = bundle(h.dir.path(), "burst", &[("probe.py", PROBE, false)]);
    let prepared = h.prepare("burst", &Function::python("probe.handler"), &zip).await.unwrap();
    settled_at(&h, Kind::Python3, 1, Duration::from_secs(20)).await;

    // Five cold starts at once: one finds a sandbox ready, four start from nothing.
    let config = instance_config(128 << 20);
    let create = || prepared.create(&config);
    let (a, b, c, d, e) = tokio::join!(create(), create(), create(), create(), create());
    let mut instances: Vec<_> = [a, b, c, d, e].into_iter().map(|started| started.unwrap()).collect();
    for (n, instance) in instances.iter_mut().enumerate() {
        let me = json(&invoke(instance, &format!("b-{n}"), json!({"attack": "whoami"})).await);
        assert_eq!(me["function"], "burst");
    }
    // The pool grows to meet a burst like it, up to its ceiling of three...
    settled_at(&h, Kind::Python3, 3, Duration::from_secs(20)).await;
    // ...and a window without cold starts brings it back to the floor.
    settled_at(&h, Kind::Python3, 1, Duration::from_secs(20)).await;
}
