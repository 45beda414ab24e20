//! Secrets as a feature: set from standard input, sealed at rest, named by manifests
//! (`env` and webhooks), never shown; function tokens revoked by rotation and by
//! deleting the function; the secrets key rotated without losing access keys.

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::events::signature;
use crate::harness::{BIN, TestServer};

/// The value nobody but the function may see.
const STRIPE: &str = "sk_live_updraft_marker_91c2f0";

/// Answers with a digest of its secret (never the secret), its token, and publishes
/// with that token when asked.
const SECRETIVE: &str = r#"
import hashlib, json, os, urllib.request

def handler(event, context):
    answer = {"stripe_sha256": hashlib.sha256(os.environ.get("STRIPE_KEY", "").encode()).hexdigest(),
              "token": os.environ.get("UPDRAFT_TOKEN")}
    if event.get("publish"):
        request = urllib.request.Request(os.environ["UPDRAFT_API_URL"] + "/v1/topics/orders.paid",
                                         data=b"{}", method="POST",
                                         headers={"authorization": "Bearer " + os.environ["UPDRAFT_TOKEN"]})
        try:
            answer["published"] = urllib.request.urlopen(request, timeout=10).status
        except urllib.error.HTTPError as e:
            answer["published"] = e.code
    return answer
"#;

fn sha256(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// `updraft secrets set NAME` with `value` on standard input.
fn secrets_set(server: &TestServer, name: &str, value: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(["--endpoint", &server.url(""), "--data-dir"])
        .arg(server.data_dir.path())
        .args(["secrets", "set", name])
        .env_remove("UPDRAFT_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{value}\n").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn app(dir: &std::path::Path, extra: &str) {
    let manifest = format!(
        "[app]\nname = \"shop\"\n\n\
         [functions.secretive]\nruntime = \"python3\"\nhandler = \"app.handler\"\nsource = \"src\"\n\
         env = {{ STRIPE_KEY = {{ secret = \"stripe\" }}, MODE = \"live\" }}\npublishes = [\"orders.paid\"]\n{extra}\n\n\
         [functions.ledger]\nruntime = \"python3\"\nhandler = \"app.handler\"\nsource = \"src\"\n\
         triggers = [{{ topic = \"orders.paid\" }}, {{ webhook = \"POST /hooks/pay\", secret = \"hook\" }}]\n"
    );
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("updraft.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/app.py"), SECRETIVE).unwrap();
}

#[tokio::test]
async fn secrets_reach_their_functions_and_nothing_else() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    app(dir.path(), "");

    // A manifest naming a secret that is not set is refused, saying how to set it.
    assert!(secrets_set(&server, "hook", "webhook-signing-secret").status.success());
    let refused = server.cli(&["deploy", dir.path().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(text.contains("\"stripe\", which is not set") && text.contains("updraft secrets set stripe"), "{text}");

    let set = secrets_set(&server, "stripe", STRIPE);
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    server.deploy(dir.path());

    let answer = server.invoke("secretive", json!({})).await;
    assert_eq!(answer["stripe_sha256"], sha256(STRIPE), "the function gets the secret's value");

    // Nothing the platform shows holds it: descriptions, listings, logs, records.
    let described = server.cli_ok(&["--output", "json", "describe", "secretive"]);
    assert!(described.contains("\"STRIPE_KEY\": \"stripe\""), "{described}");
    let human = server.cli_ok(&["describe", "secretive"]);
    assert!(human.contains("STRIPE_KEY (secret stripe)"), "{human}");
    let mut shown = vec![described, human, server.cli_ok(&["--output", "json", "secrets", "ls"])];
    for path in ["/v1/functions", "/v1/functions/secretive", "/v1/invocations", "/v1/functions/secretive/logs"] {
        shown.push(server.api(Method::GET, path).send().await.unwrap().text().await.unwrap());
    }
    shown.push(server.log_text());
    for text in &shown {
        assert!(!text.contains(STRIPE), "the secret shows: {text}");
    }
    let listed = server.cli_ok(&["secrets", "ls"]);
    assert!(listed.contains("stripe") && listed.contains("secretive"), "{listed}");
    // Sealed at rest: the database file does not hold it.
    server.cli_ok(&["ls"]);
    let database = std::fs::read(server.data_dir.path().join("updraft.db")).unwrap();
    let wal = std::fs::read(server.data_dir.path().join("updraft.db-wal")).unwrap_or_default();
    for bytes in [&database, &wal] {
        assert!(!bytes.windows(STRIPE.len()).any(|w| w == STRIPE.as_bytes()), "the database holds the secret");
    }

    // A webhook signed with a stored secret.
    let body = br#"{"paid":1}"#;
    let hook = |secret: &str| {
        server
            .http
            .post(server.url("/hooks/pay"))
            .header("x-hub-signature-256", signature(secret, body))
            .body(&body[..])
            .send()
    };
    assert_eq!(hook("webhook-signing-secret").await.unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(hook("wrong").await.unwrap().status(), StatusCode::UNAUTHORIZED);

    // A secret in use cannot be deleted; a new value reaches the function's next
    // instances.
    let in_use = server.cli(&["secrets", "rm", "stripe"]);
    assert!(String::from_utf8_lossy(&in_use.stderr).contains("used by secretive"), "{in_use:?}");
    assert!(secrets_set(&server, "stripe", "sk_live_rotated").status.success());
    assert_eq!(server.invoke("secretive", json!({})).await["stripe_sha256"], sha256("sk_live_rotated"));
    // Refused values, each with its reason.
    for (value, reason) in [("", "empty"), ("a\0b", "NUL"), (&"x".repeat(5000), "over the limit")] {
        let response = server.api(Method::PUT, "/v1/secrets/other").body(value.to_owned()).send().await.unwrap();
        let error = response.text().await.unwrap();
        assert!(error.contains(reason), "{value:.10?}: {error}");
    }
}

#[tokio::test]
async fn function_tokens_are_revoked_by_rotation_and_by_deleting_the_function() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    app(dir.path(), "");
    secrets_set(&server, "stripe", STRIPE);
    secrets_set(&server, "hook", "x");
    server.deploy(dir.path());
    let publish =
        |token: String| server.http.post(server.url("/v1/topics/orders.paid")).bearer_auth(token).body("{}").send();

    let first = server.invoke("secretive", json!({"publish": true})).await;
    assert_eq!(first["published"], 202, "the function publishes with its token: {first}");
    let old_token = first["token"].as_str().unwrap().to_owned();
    assert_eq!(publish(old_token.clone()).await.unwrap().status(), StatusCode::ACCEPTED);

    let rotated = server.cli_ok(&["tokens", "rotate", "secretive"]);
    assert!(rotated.contains("generation 2"), "{rotated}");
    assert_eq!(publish(old_token.clone()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let second = server.invoke("secretive", json!({"publish": true})).await;
    assert_eq!(second["published"], 202, "a new instance holds the new token: {second}");
    let new_token = second["token"].as_str().unwrap().to_owned();
    assert_ne!(new_token, old_token);

    // Deleted and deployed again under the same name: no earlier token works.
    server.cli_ok(&["delete", "secretive"]);
    assert_eq!(publish(new_token.clone()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    server.deploy(dir.path());
    assert_eq!(publish(new_token).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(publish(old_token).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.invoke("secretive", json!({"publish": true})).await["published"], 202);
}

#[tokio::test]
async fn the_secrets_key_rotates_without_losing_access_keys_secrets_or_tokens() {
    let mut server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    app(dir.path(), "");
    secrets_set(&server, "stripe", STRIPE);
    secrets_set(&server, "hook", "x");
    server.deploy(dir.path());
    let key: Value = serde_json::from_str(&server.cli_ok(&["--output", "json", "keys", "create"])).unwrap();
    let token = server.invoke("secretive", json!({})).await["token"].as_str().unwrap().to_owned();
    let key_file = server.data_dir.path().join("secrets.key");
    let before = std::fs::read(&key_file).unwrap();

    let rotated = server.cli_ok(&["secrets", "rotate-key"]);
    assert!(rotated.contains("4 sealed values"), "an access key, two secrets and the token key: {rotated}");
    assert_ne!(std::fs::read(&key_file).unwrap(), before, "secrets.key holds a new key");
    assert!(!server.data_dir.path().join("secrets.key.next").exists());

    // Through a restart, which opens everything with the new key only.
    server.restart();
    let boto3 = |key: &Value| {
        let script = "import boto3, sys\nc = boto3.client('lambda', endpoint_url=sys.argv[1], region_name='us-east-1')\n\
                      print(c.invoke(FunctionName='secretive', Payload=b'{}')['StatusCode'])";
        Command::new("python3")
            .args(["-c", script, &server.url("")])
            .env("AWS_ACCESS_KEY_ID", key["access_key_id"].as_str().unwrap())
            .env("AWS_SECRET_ACCESS_KEY", key["secret_access_key"].as_str().unwrap())
            .output()
            .unwrap()
    };
    let signed = boto3(&key);
    assert_eq!(String::from_utf8_lossy(&signed.stdout).trim(), "200", "{}", String::from_utf8_lossy(&signed.stderr));
    assert_eq!(server.invoke("secretive", json!({})).await["stripe_sha256"], sha256(STRIPE));
    let published = server.http.post(server.url("/v1/topics/orders.paid")).bearer_auth(token).body("{}").send().await;
    assert_eq!(published.unwrap().status(), StatusCode::ACCEPTED, "function tokens outlive the rotation");
}

#[tokio::test]
async fn the_admin_key_is_stored_only_once_its_token_file_is_written() {
    let data = tempfile::tempdir().unwrap();
    // A folder where the token file goes: writing it fails.
    std::fs::create_dir(data.path().join("admin-token")).unwrap();
    let failed =
        Command::new(BIN).args(["server", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data.path()).output().unwrap();
    let text = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success() && text.contains("could not write the admin token"), "{text}");

    // Fixed, the next start makes the key and its file: no key was kept that nobody holds.
    std::fs::remove_dir(data.path().join("admin-token")).unwrap();
    let server = TestServer::start_in(data);
    assert!(server.cli(&["ls"]).status.success(), "the admin token works");
}
