//! The way out of a granted instance, in a real sandbox: listed addresses are reached
//! (loopback ones as such, others through an address added inside), listed names
//! resolve inside (from `/etc/hosts`, or the host's DNS server for wildcards) but are
//! never forwarded to the host's own loopback, and nothing else resolves or connects.

use std::io::{Read, Write};
use std::net::TcpListener;

use serde_json::{Value, json};

use crate::harness::{Function, harness, invoke, json};
use crate::hostile::assert_sandboxed;

const CLIENT: &str = r#"
import os, socket

def whoami():
    return {"pid": os.getpid(), "uid": os.getuid(), "hostname": socket.gethostname(),
            "processes": [int(p) for p in os.listdir("/proc") if p.isdigit()]}

def exchange(host, port):
    try:
        s = socket.create_connection((host, port), timeout=5)
    except OSError as e:
        return {"connected": False, "error": str(e)}
    with s:
        try:
            s.sendall(b"ping")
            return {"connected": True, "answer": s.recv(16).decode()}
        except OSError as e:
            # Taken, then closed from the other side.
            return {"connected": True, "answer": ""}

def resolve(name):
    try:
        return {"address": socket.gethostbyname(name)}
    except OSError as e:
        return {"error": str(e)}

def handler(event, context):
    if event.get("attack") == "whoami":
        return whoami()
    if "resolve" in event:
        return resolve(event["resolve"])
    return exchange(event["host"], event["port"])
"#;

/// A host listener answering `pong` to each connection.
fn pong() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buffer = [0u8; 4];
            if stream.read_exact(&mut buffer).is_ok() {
                let _ = stream.write_all(b"pong");
            }
        }
    });
    port
}

async fn call(instance: &mut crate::harness::Started, event: Value) -> Value {
    json(&invoke(instance, "egress", event).await)
}

#[tokio::test]
async fn granted_addresses_and_names_and_nothing_else() {
    let port = pong();
    let other = pong();
    let hosts = vec![
        format!("127.0.0.1:{port}"),
        format!("10.9.8.7:{port}"),
        // The host's own name: it resolves to loopback there, which names may not reach.
        format!("{}:{port}", hostname()),
        "*.wild.test".to_owned(),
    ];
    let h = harness().await;
    let function = Function { hosts, ..Function::python("client.handler") };
    let mut instance = h.start("egress", function, &[("client.py", CLIENT, false)]).await.unwrap();
    assert_sandboxed(&mut instance).await;

    // A loopback address listed as such: reached, through the host.
    let reached = call(&mut instance, json!({"host": "127.0.0.1", "port": port})).await;
    assert_eq!(reached, json!({"connected": true, "answer": "pong"}));
    // Another port of the same address, and another loopback listener: nothing there.
    let refused = call(&mut instance, json!({"host": "127.0.0.1", "port": other})).await;
    assert_eq!(refused["connected"], false, "{refused}");

    // An address outside loopback: it is on the instance's loopback interface, so the
    // connection is taken (the host then finds no route and closes it); one not listed
    // has no route at all.
    let listed = call(&mut instance, json!({"host": "10.9.8.7", "port": port})).await;
    assert_eq!(listed["connected"], true, "{listed}");
    assert_eq!(listed["answer"], "", "{listed}");
    let unlisted = call(&mut instance, json!({"host": "10.9.8.8", "port": port})).await;
    assert_eq!(unlisted["connected"], false, "{unlisted}");

    // A listed name resolves inside to an address of its own, but the host resolves it
    // to its loopback, which a name never leads to: the connection gets no answer.
    let name = call(&mut instance, json!({"resolve": hostname()})).await;
    assert!(name["address"].as_str().unwrap().starts_with("127.100."), "{name}");
    let through_name = call(&mut instance, json!({"host": hostname(), "port": port})).await;
    assert_ne!(through_name["answer"], "pong", "a name reached the host's loopback: {through_name}");

    // Wildcard names come from the host's DNS server; others do not resolve.
    let wild = call(&mut instance, json!({"resolve": "db.wild.test"})).await;
    assert!(wild["address"].as_str().unwrap().starts_with("127.100."), "{wild}");
    let again = call(&mut instance, json!({"resolve": "db.wild.test"})).await;
    assert_eq!(again, wild, "a name keeps its address");
    for name in ["wild.test", "example.com", "localhost.localdomain"] {
        let resolved = call(&mut instance, json!({"resolve": name})).await;
        assert!(resolved.get("error").is_some(), "{name} resolved: {resolved}");
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned()
}
