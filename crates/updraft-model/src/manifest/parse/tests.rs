//! The manifest checker's tests: every section, every problem it reports.

use super::*;
use crate::route::parse_http;
use crate::*;

/// The sketch from the task, with every key.
const FULL: &str = r#"
[app]
name = "hello"

[functions.hello]
runtime = "wasm"
source = "target/wasm32-wasip2/release/hello.wasm"
build = { command = "cargo build --release --target wasm32-wasip2", workdir = "hello" }
timeout = "5s"
memory = "128MiB"
concurrency = 50
env = { GREETING = "hi" }
allowed_outbound_hosts = ["api.example.com", "*.example.com", "127.0.0.1:8080", "*"]
triggers = [
{ http = "GET /hello" },
{ http = "get,POST,GET /hello/{name}", auth = "key" },
{ http = "* /static/{*path}" },
]

[functions.welcome]
runtime = "python3"
handler = "welcome.handler"
source = "welcome/"
build = "pip install -r requirements.txt -t welcome"
"#;

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(text, "updraft.toml", &Limits::default())
}

/// The problems of an invalid manifest as `(field, message)` pairs.
fn problems(text: &str) -> Vec<(String, String)> {
    match parse(text) {
        Ok(manifest) => panic!("expected problems, got {manifest:#?}"),
        Err(error) => error.problems.into_iter().map(|p| (p.field, p.message)).collect(),
    }
}

/// The only problem of an invalid manifest, as `(field, message)`.
fn problem(text: &str) -> (String, String) {
    let mut problems = problems(text);
    assert_eq!(problems.len(), 1, "expected one problem, got {problems:#?}");
    problems.remove(0)
}

/// A valid manifest with one wasm function whose table ends with `extra`.
fn with_function(extra: &str) -> String {
    format!("[app]\nname = \"hello\"\n\n[functions.hello]\nruntime = \"wasm\"\nsource = \"hello.wasm\"\n{extra}\n")
}

fn name(text: &str) -> FunctionName {
    FunctionName::new(text).unwrap()
}

fn http(text: &str, auth: HttpAuth) -> Trigger {
    let (methods, route) = parse_http(text).unwrap();
    Trigger::Http(HttpTrigger { methods, route, auth, alias: None, payload_format: Default::default() })
}

#[test]
fn full_manifest_parses() {
    let manifest = parse(FULL).unwrap();
    assert_eq!(manifest.app.as_str(), "hello");
    assert_eq!(manifest.functions.len(), 2);

    let hello = &manifest.functions[&name("hello")];
    assert_eq!(hello.source, "target/wasm32-wasip2/release/hello.wasm");
    assert_eq!(
        hello.build,
        Some(BuildSpec {
            command: "cargo build --release --target wasm32-wasip2".to_owned(),
            workdir: Some("hello".to_owned()),
        })
    );
    let config = &hello.config;
    assert_eq!(config.runtime, RuntimeKind::Wasm);
    assert_eq!(config.handler, None);
    assert_eq!(config.timeout, Duration::from_secs(5));
    assert_eq!(config.memory, ByteSize::mib(128));
    assert_eq!(config.concurrency, Some(50));
    assert_eq!(config.env, BTreeMap::from([("GREETING".to_owned(), "hi".to_owned())]));
    assert_eq!(config.allowed_outbound_hosts, ["api.example.com", "*.example.com", "127.0.0.1:8080", "*"]);
    assert_eq!(
        config.triggers,
        [
            http("GET /hello", HttpAuth::Public),
            http("GET,POST /hello/{name}", HttpAuth::Key),
            http("/static/{*path}", HttpAuth::Public),
        ]
    );
    let Trigger::Http(second) = &config.triggers[1] else { panic!("{:?}", config.triggers[1]) };
    assert_eq!(second.methods.methods, ["GET", "POST"]);
    assert_eq!(second.route.to_string(), "/hello/{name}");

    let welcome = &manifest.functions[&name("welcome")];
    assert_eq!(welcome.config.runtime, RuntimeKind::Python3);
    assert_eq!(welcome.config.handler.as_deref(), Some("welcome.handler"));
    assert_eq!(
        welcome.build,
        Some(BuildSpec { command: "pip install -r requirements.txt -t welcome".to_owned(), workdir: None })
    );
}

#[test]
fn defaults_apply_to_absent_keys() {
    let manifest = parse(&with_function("")).unwrap();
    let limits = Limits::default();
    let hello = &manifest.functions[&name("hello")];
    assert_eq!(hello.build, None);
    assert_eq!(
        hello.config,
        FunctionConfig {
            runtime: RuntimeKind::Wasm,
            handler: None,
            server: None,
            memory: limits.default_memory,
            timeout: limits.default_timeout,
            concurrency: None,
            env: BTreeMap::new(),
            secret_env: BTreeMap::new(),
            allowed_outbound_hosts: Vec::new(),
            instance_reuse: false,
            concurrency_per_instance: 1,
            idle_timeout: limits.default_idle_timeout,
            min_instances: 0,
            retries: 2,
            max_event_age: Duration::from_secs(6 * 3600),
            on_success: None,
            on_failure: None,
            dead_letter_topic: None,
            publishes: Vec::new(),
            starts: Vec::new(),
            triggers: Vec::new(),
            description: None,
            lambda_runtime: None,
            recursive_loop: Default::default(),
        }
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
name = "stray"

[app]
name = "Hello"

[functions.a]
runtime = "wasm"
source = ""
timeout = "90m"
memory = "8MiB"
concurrency = "50"
triggers = [{ http = "GET hello" }]

[functions.b]
source = "b.wasm"
"#;
    let fields: Vec<String> = problems(text).into_iter().map(|(field, _)| field).collect();
    assert_eq!(
        fields,
        [
            "name",
            "app.name",
            "functions.a.source",
            "functions.a.timeout",
            "functions.a.memory",
            "functions.a.concurrency",
            "functions.a.triggers[0].http",
            "functions.b.runtime",
        ]
    );
}

#[test]
fn unknown_keys_suggest_the_closest_known_key() {
    let (field, message) = problem(&with_function("timout = \"5s\""));
    assert_eq!(field, "functions.hello.timout");
    assert_eq!(message, "unknown key \"timout\"; did you mean \"timeout\"?");

    let (field, message) =
        problem("[app]\nnmae = \"x\"\nname = \"x\"\n[functions.x]\nruntime = \"wasm\"\nsource = \"x\"");
    assert_eq!(field, "app.nmae");
    assert!(message.contains("did you mean \"name\"?"), "{message}");

    let (field, message) = problem(&with_function("triggers = [{ htp = \"GET /\" , http = \"GET /\" }]"));
    assert_eq!(field, "functions.hello.triggers[0].htp");
    assert!(message.contains("did you mean \"http\"?"), "{message}");

    let (field, message) = problem(&with_function("build = { command = \"make\", wrkdir = \"x\" }"));
    assert_eq!(field, "functions.hello.build.wrkdir");
    assert!(message.contains("did you mean \"workdir\"?"), "{message}");
}

#[test]
fn unknown_keys_without_a_close_match_list_the_allowed_keys() {
    let (field, message) = problem(&with_function("colour = \"blue\""));
    assert_eq!(field, "functions.hello.colour");
    assert!(message.starts_with("unknown key \"colour\"; remove it"), "{message}");
    assert!(message.contains("runtime, source, build"), "{message}");

    let (field, message) = problem(&format!("{}\n[extra]\n", with_function("")));
    assert_eq!(field, "extra");
    assert!(message.contains("app, functions"), "{message}");
}

#[test]
fn promised_keys_are_not_supported_yet() {
    let workflow = |definition: &str| format!("{}\n[workflows.w]\ndefinition = '{definition}'", with_function(""));
    let (field, message) = problems(&workflow("{}")).remove(0);
    assert_eq!(field, "workflows.w.definition");
    assert!(message.contains("StartAt is missing"), "{message}");
    let ghost = r#"{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "ghost", "End": true}}}"#;
    let (field, message) = problem(&workflow(ghost));
    assert_eq!(field, "workflows.w.definition");
    assert!(message.contains("runs function \"ghost\", which this app does not define"), "{message}");
    let good = r#"{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "hello", "End": true}}}"#;
    let manifest = parse(&workflow(good)).unwrap();
    assert_eq!(manifest.workflows[&name("w")].machine.functions(), ["hello"]);
}

#[test]
fn wrong_types_say_what_was_expected() {
    let (field, message) = problem(&with_function("concurrency = \"50\""));
    assert_eq!(field, "functions.hello.concurrency");
    assert_eq!(message, "expected a whole number, found a string; write it without quotes, like concurrency = 50");

    let cases = [
        ("concurrency = 1.5", "functions.hello.concurrency", "expected a whole number, found a decimal number"),
        ("env = \"GREETING=hi\"", "functions.hello.env", "expected a table, found a string"),
        ("triggers = { http = \"GET /\" }", "functions.hello.triggers", "expected a list, found a table"),
        ("triggers = [\"GET /\"]", "functions.hello.triggers[0]", "expected a table, found a string"),
        ("triggers = [{ http = 5 }]", "functions.hello.triggers[0].http", "expected a string, found a whole number"),
        (
            "timeout = true",
            "functions.hello.timeout",
            "expected a duration like \"5s\" or a whole number of seconds, found a boolean",
        ),
        (
            "memory = [1]",
            "functions.hello.memory",
            "expected a size like \"128MiB\" or a whole number of bytes, found a list",
        ),
        ("build = 3", "functions.hello.build", "expected a command string or a table, found a whole number"),
        (
            "allowed_outbound_hosts = [1]",
            "functions.hello.allowed_outbound_hosts[0]",
            "expected a string, found a whole number",
        ),
    ];
    for (extra, expected_field, expected_start) in cases {
        let (field, message) = problem(&with_function(extra));
        assert_eq!(field, expected_field, "{extra}");
        assert!(message.starts_with(expected_start), "{extra}: {message}");
    }

    let (field, message) = problem("app = \"hello\"\n[functions.x]\nruntime = \"wasm\"\nsource = \"x\"");
    assert_eq!(field, "app");
    assert!(message.starts_with("expected a table, found a string; write it like [app]"), "{message}");

    let (field, message) = problem("[app]\nname = \"x\"\n[functions.x]\nruntime = 1\nsource = \"x\"");
    assert_eq!(field, "functions.x.runtime");
    assert!(message.starts_with("expected a string, found a whole number"), "{message}");
}

#[test]
fn timeouts_parse_and_stay_within_limits() {
    let timeout = |text: &str| {
        parse(&with_function(&format!("timeout = {text}")))
            .map(|manifest| manifest.functions[&name("hello")].config.timeout)
    };
    assert_eq!(timeout("\"500ms\""), Ok(Duration::from_millis(500)));
    assert_eq!(timeout("\"1m30s\""), Ok(Duration::from_secs(90)));
    assert_eq!(
        timeout("\"1h\"").map_err(|e| e.problems[0].message.clone()),
        Err("\"1h\" is above the maximum 900s".to_owned())
    );
    assert_eq!(timeout("\"15m\""), Ok(Duration::from_secs(900)));
    assert_eq!(timeout("10"), Ok(Duration::from_secs(10)));

    let (field, message) = problem(&with_function("timeout = \"90m\""));
    assert_eq!(field, "functions.hello.timeout");
    assert_eq!(message, "\"90m\" is above the maximum 900s");
    assert_eq!(problem(&with_function("timeout = 5400")).1, "5400 is above the maximum 900s");
    assert_eq!(problem(&with_function("timeout = \"0s\"")).1, "\"0s\" is below the minimum 1ms");
    assert!(problem(&with_function("timeout = -1")).1.contains("negative"));
    assert!(problem(&with_function("timeout = \"5\"")).1.contains("has no unit; write \"5s\""));
    assert!(problem(&with_function("timeout = \"5 sec\"")).1.contains("is not a duration"));
}

#[test]
fn memory_stays_within_limits() {
    let (field, message) = problem(&with_function("memory = \"8MiB\""));
    assert_eq!(field, "functions.hello.memory");
    assert_eq!(message, "\"8MiB\" is below the minimum 16MiB");
    assert_eq!(problem(&with_function("memory = \"11GiB\"")).1, "\"11GiB\" is above the maximum 10GiB");
    assert_eq!(problem(&with_function("memory = 1024")).1, "1024 is below the minimum 16MiB");
    assert!(problem(&with_function("memory = \"128\"")).1.contains("has no unit"));

    let memory = |text: &str| {
        parse(&with_function(&format!("memory = {text}"))).unwrap().functions[&name("hello")].config.memory
    };
    assert_eq!(memory("\"1GiB\""), ByteSize(ByteSize::GIB));
    // Lambda's "128 MB" of memory is 128 MiB, and so is a manifest's.
    assert_eq!(memory("\"128MB\""), ByteSize::mib(128));
    assert_eq!(memory("33554432"), ByteSize::mib(32));
}

#[test]
fn concurrency_allows_zero_and_stops_at_the_maximum() {
    let concurrency = |extra: &str| parse(&with_function(extra)).unwrap().functions[&name("hello")].config.concurrency;
    assert_eq!(concurrency("concurrency = 0"), Some(0));
    assert_eq!(concurrency("concurrency = 1000"), Some(1000));
    assert_eq!(problem(&with_function("concurrency = 1001")).1, "1001 is above the maximum 1000");
    assert_eq!(problem(&with_function("concurrency = 99999999999")).1, "99999999999 is above the maximum 1000");
    assert!(problem(&with_function("concurrency = -1")).1.starts_with("-1 is negative; write 0"));
}

#[test]
fn a_wasm_component_runs_several_requests_per_instance_only_when_reused() {
    let per_instance =
        |extra: &str| parse(&with_function(extra)).unwrap().functions[&name("hello")].config.concurrency_per_instance;
    assert_eq!(per_instance(""), 1);
    assert_eq!(per_instance("instance_reuse = true\nconcurrency_per_instance = 8"), 8);
    assert_eq!(per_instance("concurrency_per_instance = 1"), 1);
    let (field, message) = problem(&with_function("concurrency_per_instance = 8"));
    assert_eq!(field, "functions.hello.concurrency_per_instance");
    assert!(message.contains("add instance_reuse = true"), "{message}");
    let (_, message) = problem(&with_function("instance_reuse = true\nconcurrency_per_instance = 0"));
    assert!(message.starts_with("0 is out of range"), "{message}");
    let python = "[app]\nname = \"a\"\n\n[functions.a]\nruntime = \"python3\"\nsource = \"a/\"\nhandler = \"app.handler\"\nconcurrency_per_instance = 2\n";
    let (_, message) = problem(python);
    assert!(message.contains("only for runtime = \"http\""), "{message}");
}

#[test]
fn bad_routes_say_why() {
    let cases = [
        ("GET hello", "route \"hello\" must start with '/'"),
        ("FETCH /hello", "unknown method \"FETCH\"; use \"*\" for any method, or some of GET, HEAD, POST"),
        ("/hello GET", "puts the route first; write the methods first, like \"GET /hello\""),
        ("GET", "has no route; add one after the methods, like \"GET /hello\""),
        ("GET, POST /hello", "has too many spaces"),
        ("GET,,POST /hello", "has an empty method"),
        ("GET,* /hello", "mixes \"*\" with other methods"),
        ("", "the trigger is empty"),
        ("GET /a/{*rest}/b", "must be the last segment"),
    ];
    for (route, expected) in cases {
        let (field, message) = problem(&with_function(&format!("triggers = [{{ http = {route:?} }}]")));
        assert_eq!(field, "functions.hello.triggers[0].http", "{route}");
        assert!(message.contains(expected), "{route}: {message}");
    }
}

#[test]
fn trigger_kinds_and_auth_are_checked() {
    let (field, message) = problem(&with_function("triggers = [{ email = \"not an address\" }]"));
    assert_eq!(field, "functions.hello.triggers[0].email");
    assert!(message.contains("is not an email address"), "{message}");

    let (field, message) = problem(&with_function("triggers = [{ carrier_pigeon = \"coo\" }]"));
    assert_eq!(field, "functions.hello.triggers[0].carrier_pigeon");
    assert!(message.starts_with("unknown trigger kind \"carrier_pigeon\"; supported: http"), "{message}");

    let (field, message) = problem(&with_function("triggers = [{ auth = \"key\" }]"));
    assert_eq!(field, "functions.hello.triggers[0]");
    assert!(message.starts_with("the trigger has no kind"), "{message}");

    let (field, message) = problem(&with_function("triggers = [{ http = \"/\", auth = \"token\" }]"));
    assert_eq!(field, "functions.hello.triggers[0].auth");
    assert!(message.starts_with("unknown auth \"token\"; use \"public\""), "{message}");
}

#[test]
fn duplicate_routes_name_both_functions() {
    let text = r#"
[app]
name = "hello"

[functions.a]
runtime = "wasm"
source = "a.wasm"
triggers = [{ http = "GET,POST /hello" }]

[functions.b]
runtime = "wasm"
source = "b.wasm"
triggers = [{ http = "GET /hello" }]
"#;
    let (field, message) = problem(text);
    assert_eq!(field, "functions.b.triggers[0]");
    assert_eq!(
        message,
        "GET /hello is also claimed by function \"a\" (functions.a.triggers[0]); give one of them another \
         route or method"
    );
}

#[test]
fn routes_collide_by_shape_and_overlapping_methods_only() {
    let triggers = |list: &str| with_function(&format!("triggers = [{list}]"));
    assert!(parse(&triggers("{ http = \"GET /a\" }, { http = \"POST /a\" }, { http = \"GET /b\" }")).is_ok());
    assert!(parse(&triggers("{ http = \"GET /users/{id}\" }, { http = \"GET /users/me\" }")).is_ok());

    let (field, message) = problem(&triggers("{ http = \"GET /users/{id}\" }, { http = \"/users/{name}\" }"));
    assert_eq!(field, "functions.hello.triggers[1]");
    assert!(
        message.starts_with("GET /users/{name} is also claimed by function \"hello\" (functions.hello.triggers[0])"),
        "{message}"
    );

    // A third claim is reported once, against the first claimant.
    let fields: Vec<String> = problems(&triggers("{ http = \"/x\" }, { http = \"GET /x\" }, { http = \"PUT /x\" }"))
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(fields, ["functions.hello.triggers[1]", "functions.hello.triggers[2]"]);
}

#[test]
fn malformed_toml_is_one_problem_with_its_position() {
    let (field, message) = problem("[app]\nname = \"hello\n");
    assert_eq!(field, "");
    assert!(message.contains("line 2"), "{message}");
}

#[test]
fn env_values_must_be_quoted_strings() {
    let (field, message) = problem(&with_function("env = { PORT = 8080 }"));
    assert_eq!(field, "functions.hello.env.PORT");
    assert_eq!(
        message,
        "expected a string, found a whole number; environment values are strings, so quote it: PORT = \"8080\""
    );

    let (field, message) = problem(&with_function("env = { \"1BAD\" = \"x\" }"));
    assert_eq!(field, "functions.hello.env.1BAD");
    assert!(message.contains("not a valid environment variable name"), "{message}");

    let (field, message) = problem(&with_function("env = { \"MY VAR\" = \"x\" }"));
    assert_eq!(field, "functions.hello.env.\"MY VAR\"");
    assert!(message.contains("not a valid environment variable name"), "{message}");
}

#[test]
fn env_values_may_name_stored_secrets() {
    let manifest = parse(&with_function(
        "env = { STRIPE_KEY = { secret = \"stripe\" }, MODE = \"live\", HOOK = { secret = \"ci-hook\" } }\n\
         triggers = [{ webhook = \"POST /hooks/a\", secret_env = \"HOOK\" }, { webhook = \"POST /hooks/b\", secret = \"ci-hook\" }]",
    ))
    .unwrap();
    let config = &manifest.functions[&name("hello")].config;
    assert_eq!(config.env, BTreeMap::from([("MODE".to_owned(), "live".to_owned())]));
    let secrets: Vec<(&str, &str)> = config.secret_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(secrets, [("HOOK", "ci-hook"), ("STRIPE_KEY", "stripe")]);
    let Trigger::Webhook(webhook) = &config.triggers[1] else { panic!() };
    assert_eq!(webhook.secret.as_ref().map(SecretName::as_str), Some("ci-hook"));

    let (field, message) = problem(&with_function("env = { KEY = { secret = \"no spaces\" } }"));
    assert_eq!(field, "functions.hello.env.KEY.secret");
    assert!(message.contains("not a valid secret name"), "{message}");
    let (field, message) = problem(&with_function("env = { KEY = { secret = \"a\", value = \"b\" } }"));
    assert_eq!(field, "functions.hello.env.KEY.value");
    assert!(message.contains("only `secret"), "{message}");
    let (field, _) = problem(&with_function(
        "triggers = [{ webhook = \"POST /h\", secret = \"a\", secret_env = \"B\" }]\nenv = { B = \"x\" }",
    ));
    assert_eq!(field, "functions.hello.triggers[0].secret");
}

#[test]
fn env_values_hold_no_nul_and_fit_lambdas_limit() {
    let (field, message) = problem(&with_function("env = { KEY = \"a\\u0000b\" }"));
    assert_eq!(field, "functions.hello.env.KEY");
    assert!(message.contains("NUL"), "{message}");
    let big = "x".repeat(4000);
    let (field, message) = problem(&with_function(&format!("env = {{ A = \"{big}\", B = \"{big}\" }}")));
    assert_eq!(field, "functions.hello.env");
    assert!(message.contains("8002 bytes") && message.contains("limit of 4096"), "{message}");
    assert!(parse(&with_function(&format!("env = {{ A = \"{}\" }}", "x".repeat(4095)))).is_ok());
}

#[test]
fn unknown_runtimes_list_the_valid_ones() {
    let (field, message) = problem("[app]\nname = \"x\"\n[functions.x]\nruntime = \"rust\"\nsource = \"x\"");
    assert_eq!(field, "functions.x.runtime");
    assert_eq!(message, "unknown runtime \"rust\"; use one of wasm, python3, nodejs, provided, http");

    let (_, message) =
        problem("[app]\nname = \"x\"\n[functions.x]\nruntime = \"python\"\nhandler = \"a.b\"\nsource = \"x\"");
    assert_eq!(
        message,
        "unknown runtime \"python\"; did you mean \"python3\"? (one of wasm, python3, nodejs, provided, http)"
    );
}

#[test]
fn handlers_follow_the_runtime() {
    let function = |runtime: &str, handler: &str| {
        format!("[app]\nname = \"x\"\n[functions.x]\nruntime = {runtime:?}\nsource = \"x\"\n{handler}")
    };
    let (field, message) = problem(&function("nodejs", ""));
    assert_eq!(field, "functions.x.handler");
    assert!(message.starts_with("required by the nodejs runtime but missing"), "{message}");

    let (field, message) = problem(&function("wasm", "handler = \"app.handler\""));
    assert_eq!(field, "functions.x.handler");
    assert!(message.starts_with("handler is only for Lambda runtimes"), "{message}");

    assert!(problem(&function("python3", "handler = \"app\"")).1.contains("is not MODULE.FUNCTION"));
    assert!(problem(&function("python3", "handler = \"app.\"")).1.contains("is not MODULE.FUNCTION"));
    assert!(parse(&function("python3", "handler = \"pkg.mod.handler\"")).is_ok());
    assert!(parse(&function("nodejs", "handler = \"src/index.handler\"")).is_ok());
    assert!(parse(&function("provided", "")).is_ok());
    assert!(parse(&function("provided", "handler = \"anything\"")).is_ok());
}

#[test]
fn outbound_hosts_are_hosts_only() {
    let hosts = |list: &str| with_function(&format!("allowed_outbound_hosts = [{list}]"));
    let (field, message) = problem(&hosts("\"ok.example.com\", \"https://api.example.com/v1\""));
    assert_eq!(field, "functions.hello.allowed_outbound_hosts[1]");
    assert_eq!(
        message,
        "\"https://api.example.com/v1\" has a scheme (https://); drop it and write only the host, like \"api.example.com\""
    );
    assert!(problem(&hosts("\"\"")).1.contains("the host is empty"));
    assert!(problem(&hosts("\"example.com/path\"")).1.contains("has a path"));
    assert!(problem(&hosts("\"api.*.com\"")).1.contains("'*' in the middle"));
    assert!(problem(&hosts("\"example.com:99999\"")).1.contains("invalid port"));
    assert!(parse(&hosts("\"[::1]:8080\", \"localhost:3000\", \"*.example.com\"")).is_ok());
}

#[test]
fn build_accepts_a_command_or_a_table() {
    assert!(problem(&with_function("build = \"  \"")).1.contains("the build command is empty"));
    let (field, message) = problem(&with_function("build = { workdir = \"x\" }"));
    assert_eq!(field, "functions.hello.build.command");
    assert!(message.starts_with("required but missing"), "{message}");
}

#[test]
fn the_app_and_a_function_are_required() {
    let (field, message) = problem("[functions.x]\nruntime = \"wasm\"\nsource = \"x\"");
    assert_eq!(field, "app");
    assert!(message.contains("add [app]"), "{message}");

    for text in ["[app]\nname = \"x\"", "[app]\nname = \"x\"\n[functions]"] {
        let (field, message) = problem(text);
        assert_eq!(field, "functions");
        assert!(message.contains("add a [functions.NAME] table"), "{message}");
    }

    let (field, message) = problem("[app]\nname = \"x\"\n[functions.Hello]\nruntime = \"wasm\"\nsource = \"x\"");
    assert_eq!(field, "functions.Hello");
    assert!(message.contains("must start with a lowercase letter"), "{message}");
}

#[test]
fn errors_display_with_file_and_field() {
    let error = parse(&with_function("timeout = \"90m\"\nmemory = \"8MiB\"")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "updraft.toml has 2 problems:\n  updraft.toml: functions.hello.timeout: \"90m\" is above the maximum 900s\n  \
         updraft.toml: functions.hello.memory: \"8MiB\" is below the minimum 16MiB"
    );
}

#[test]
fn odd_inputs_are_problems_not_panics() {
    let inputs = [
        "",
        "\u{0}",
        "[[app]]\nname = 1",
        "app = { name = \"\" }\nfunctions = []",
        "[app]\nname = \"x\"\n[functions.x]\nruntime = \"wasm\"\nsource = \"x\"\ntimeout = \"18446744073709551615h\"",
        "[app]\nname = \"x\"\n[functions.x]\nruntime = \"wasm\"\nsource = \"x\"\nmemory = -9223372036854775808",
        "[app]\nname = \"x\"\n[functions.x]\nruntime = \"wasm\"\nsource = \"x\"\ntriggers = [[], {}, { http = \"\u{e9} \u{e9}\" }]",
        "[app]\nname = \"x\"\n[functions.\"\"]\nruntime = \"wasm\"",
    ];
    for input in inputs {
        let error = parse(input).unwrap_err();
        assert!(!error.problems.is_empty(), "{input:?}");
    }
}

#[test]
fn the_servers_own_paths_are_refused_as_routes() {
    for route in ["/v1/functions", "/2015-03-31/functions/f/invocations", "/metrics", "/healthz"] {
        let (field, message) = problem(&with_function(&format!("triggers = [{{ http = \"GET {route}\" }}]")));
        assert_eq!(field, "functions.hello.triggers[0].http");
        assert!(message.contains("is Updraft's own"), "{message}");
    }
    assert!(
        Manifest::parse(
            &with_function("triggers = [{ http = \"GET /metrics/mine\" }]"),
            "updraft.toml",
            &Limits::default()
        )
        .is_ok()
    );
}

#[test]
fn event_triggers_parse_with_their_options() {
    let manifest = parse(&with_function(
        r#"env = { HOOK_SECRET = "s3cret" }
triggers = [
  { topic = "user.signed_up" },
  { webhook = "POST /hooks/{repo}", secret_env = "HOOK_SECRET" },
  { schedule = "0 9 * * MON-FRI", timezone = "Europe/Paris", catch_up = "skip" },
  { schedule = "rate(5 minutes)" },
  { queue = "jobs", batch_size = 25, batch_window = "2s" },
  { email = "Signup@Example.com" },
  { email = "*@inbound.example.com" },
]"#,
    ))
    .unwrap();
    let triggers = &manifest.functions[&name("hello")].config.triggers;
    assert_eq!(
        triggers[0],
        Trigger::Topic(TopicTrigger { topic: TopicName::new("user.signed_up").unwrap(), alias: None })
    );
    let Trigger::Webhook(webhook) = &triggers[1] else { panic!("{triggers:?}") };
    assert_eq!(
        (webhook.route.to_string().as_str(), webhook.secret_env.as_deref()),
        ("/hooks/{repo}", Some("HOOK_SECRET"))
    );
    let Trigger::Schedule(weekdays) = &triggers[2] else { panic!("{triggers:?}") };
    assert_eq!((weekdays.timezone.name(), weekdays.catch_up), ("Europe/Paris", CatchUp::Skip));
    let Trigger::Schedule(rate) = &triggers[3] else { panic!("{triggers:?}") };
    let Trigger::Queue(jobs) = &triggers[4] else { panic!("{triggers:?}") };
    assert_eq!(
        (jobs.queue.as_str(), jobs.batch_size, jobs.batch_window, jobs.max_receives, jobs.dead_letter_queue.as_str()),
        ("jobs", 25, Duration::from_secs(2), 5, "jobs-dlq")
    );
    assert_eq!(jobs.visibility_timeout, Duration::from_secs(30));
    let Trigger::Email(signup) = &triggers[5] else { panic!("{triggers:?}") };
    assert!(signup.claims("SIGNUP@example.COM") && !signup.claims("other@example.com"));
    let Trigger::Email(inbound) = &triggers[6] else { panic!("{triggers:?}") };
    assert!(inbound.claims("anyone@inbound.example.com") && !inbound.claims("anyone@example.com"));
    assert_eq!(
        (rate.schedule.as_str(), rate.timezone, rate.catch_up),
        ("rate(5 minutes)", Timezone::UTC, CatchUp::Latest)
    );
}

#[test]
fn event_triggers_report_what_to_fix() {
    let cases = [
        ("{ topic = \"a b\" }", "functions.hello.triggers[0].topic", "is not a valid topic name"),
        ("{ schedule = \"every day\" }", "functions.hello.triggers[0].schedule", "is not a cron expression"),
        ("{ schedule = \"rate(1 fortnight)\" }", "functions.hello.triggers[0].schedule", "unknown unit"),
        ("{ schedule = \"@daily\", timezone = \"Paris\" }", "functions.hello.triggers[0].timezone", "IANA name"),
        ("{ schedule = \"@daily\", catch_up = \"some\" }", "functions.hello.triggers[0].catch_up", "unknown catch_up"),
        (
            "{ topic = \"t\", auth = \"key\" }",
            "functions.hello.triggers[0].auth",
            "auth is for http triggers, not topic",
        ),
        ("{ topic = \"t\", http = \"/x\" }", "functions.hello.triggers[0]", "has http and topic; make them two"),
        (
            "{ webhook = \"POST /h\", secret_env = \"NOPE\" }",
            "functions.hello.triggers[0].secret_env",
            "NOPE is not set",
        ),
        ("{ webhook = \"POST /v1/hooks\" }", "functions.hello.triggers[0].webhook", "is Updraft's own"),
        ("{ queue = \"jobs\", batch_size = 0 }", "functions.hello.triggers[0].batch_size", "outside 1–10000"),
        (
            "{ queue = \"jobs\", batch_window = \"10m\" }",
            "functions.hello.triggers[0].batch_window",
            "above the maximum",
        ),
        (
            "{ queue = \"jobs\", dead_letter_queue = \"jobs\" }",
            "functions.hello.triggers[0].dead_letter_queue",
            "the queue itself",
        ),
    ];
    for (trigger, field, expected) in cases {
        let (found, message) = problem(&with_function(&format!("triggers = [{trigger}]")));
        assert_eq!(found, field, "{trigger}: {message}");
        assert!(message.contains(expected), "{trigger}: {message}");
    }
    // A webhook claims its route like an HTTP trigger does.
    let (field, message) =
        problem(&with_function("triggers = [{ http = \"POST /hooks/ci\" }, { webhook = \"POST /hooks/ci\" }]"));
    assert_eq!(field, "functions.hello.triggers[1]");
    assert!(message.contains("is also claimed"), "{message}");
}

#[test]
fn grants_name_topics_to_publish_to_and_workflows_to_start() {
    let manifest =
        parse(&with_function("publishes = [\"user.signed_up\", \"audit\"]\nstarts = [\"onboarding\"]")).unwrap();
    let config = &manifest.functions[&name("hello")].config;
    assert_eq!(config.publishes, [TopicName::new("user.signed_up").unwrap(), TopicName::new("audit").unwrap()]);
    assert_eq!(config.starts, ["onboarding".parse::<FunctionName>().unwrap()]);
    for (grant, field, expected) in [
        ("publishes = \"user.signed_up\"", "functions.hello.publishes", "a list"),
        ("publishes = [\"bad topic\"]", "functions.hello.publishes[0]", "topic"),
        ("publishes = [\"a\", \"a\"]", "functions.hello.publishes[1]", "listed twice"),
        ("starts = [1]", "functions.hello.starts[0]", "in quotes"),
        ("starts = [\"Not A Name\"]", "functions.hello.starts[0]", ""),
        ("env = { UPDRAFT_TOKEN = \"mine\" }", "functions.hello.env.UPDRAFT_TOKEN", "reserved"),
    ] {
        let (found, message) = problem(&with_function(grant));
        assert_eq!(found, field, "{grant}: {message}");
        assert!(message.contains(expected), "{grant}: {message}");
    }
}

#[test]
fn destinations_are_a_function_or_a_topic() {
    let manifest = parse(&with_function(
        "on_success = { function = \"audit\" }\non_failure = { topic = \"signup.dead\" }\ndead_letter_topic = \"dlq\"",
    ))
    .unwrap();
    let config = &manifest.functions[&name("hello")].config;
    assert_eq!(config.on_success, Some(Destination::Function(name("audit"))));
    assert_eq!(config.on_failure, Some(Destination::Topic(TopicName::new("signup.dead").unwrap())));
    assert_eq!(config.dead_letter_topic, Some(TopicName::new("dlq").unwrap()));
    let (field, message) = problem(&with_function("on_failure = { function = \"a\", topic = \"b\" }"));
    assert_eq!(field, "functions.hello.on_failure");
    assert!(message.contains("not both"), "{message}");
    let (field, message) = problem(&with_function("on_failure = { queue = \"b\" }"));
    assert_eq!(field, "functions.hello.on_failure.queue");
    assert!(message.contains("unknown key"), "{message}");
    let (field, _) = problem(&with_function("on_success = \"audit\""));
    assert_eq!(field, "functions.hello.on_success");
    let (field, message) = problem(&with_function("on_failure = { function = \"hello\" }"));
    assert_eq!(field, "functions.hello.on_failure");
    assert!(message.contains("cannot be its own destination"), "{message}");
}

#[test]
fn retries_and_max_event_age_are_checked() {
    let manifest =
        Manifest::parse(&with_function("retries = 0\nmax_event_age = \"15m\""), "updraft.toml", &Limits::default())
            .unwrap();
    let config = &manifest.functions.values().next().unwrap().config;
    assert_eq!((config.retries, config.max_event_age), (0, Duration::from_secs(900)));
    let defaults = Manifest::parse(&with_function(""), "updraft.toml", &Limits::default()).unwrap();
    let config = &defaults.functions.values().next().unwrap().config;
    assert_eq!((config.retries, config.max_event_age), (2, Duration::from_secs(6 * 3600)));
    let (field, message) = problem(&with_function("retries = 3"));
    assert_eq!(field, "functions.hello.retries");
    assert!(message.contains("at most twice"), "{message}");
    let (field, _) = problem(&with_function("max_event_age = \"10s\""));
    assert_eq!(field, "functions.hello.max_event_age");
}

#[test]
fn idle_timeout_and_min_instances_are_checked() {
    let manifest = Manifest::parse(
        &with_function("idle_timeout = \"30s\"\nmin_instances = 2"),
        "updraft.toml",
        &Limits::default(),
    )
    .unwrap();
    let config = &manifest.functions.values().next().unwrap().config;
    assert_eq!((config.idle_timeout, config.min_instances), (Duration::from_secs(30), 2));
    let (field, message) = problem(&with_function("concurrency = 2\nmin_instances = 3"));
    assert_eq!(field, "functions.hello.min_instances");
    assert!(message.contains("above the function's concurrency 2"), "{message}");
    let (field, message) = problem(&with_function("idle_timeout = \"48h\""));
    assert_eq!(
        (field.as_str(), message.as_str()),
        ("functions.hello.idle_timeout", "\"48h\" is above the maximum 86400s")
    );
}

#[test]
fn http_functions_are_servers_started_by_a_command() {
    let function =
        |keys: &str| format!("[app]\nname = \"x\"\n[functions.x]\nruntime = \"http\"\nsource = \"x\"\n{keys}");
    let manifest = parse(&function("command = \"gunicorn app:app --bind 127.0.0.1:$PORT\"")).unwrap();
    let server = manifest.functions[&name("x")].config.server.clone().unwrap();
    assert_eq!(server.command, "gunicorn app:app --bind 127.0.0.1:$PORT");
    assert_eq!((server.readiness_path.as_str(), server.concurrency_per_instance), ("/", 1));

    let manifest =
        parse(&function("command = \"node server.js\"\nreadiness_path = \"/healthz\"\nconcurrency_per_instance = 8"))
            .unwrap();
    let server = manifest.functions[&name("x")].config.server.clone().unwrap();
    assert_eq!((server.readiness_path.as_str(), server.concurrency_per_instance), ("/healthz", 8));

    let (field, message) = problem(&function(""));
    assert_eq!(field, "functions.x.command");
    assert!(message.starts_with("required by the http runtime"), "{message}");
    // Every mistake at once, each naming its key.
    let found = problems(&function(
        "command = \" \"\nreadiness_path = \"healthz\"\nconcurrency_per_instance = 0\nhandler = \"app.handler\"",
    ));
    let mut fields: Vec<&str> = found.iter().map(|(field, _)| field.as_str()).collect();
    fields.sort_unstable();
    let expected = [
        "functions.x.command",
        "functions.x.concurrency_per_instance",
        "functions.x.handler",
        "functions.x.readiness_path",
    ];
    assert_eq!(fields, expected, "{found:?}");

    // The server's keys belong to the http runtime only.
    let lambda =
        "[app]\nname = \"x\"\n[functions.x]\nruntime = \"python3\"\nhandler = \"a.b\"\nsource = \"x\"\ncommand = \"x\"";
    let (field, message) = problem(lambda);
    assert_eq!(field, "functions.x.command");
    assert!(message.contains("only for runtime = \"http\""), "{message}");

    // A fingerprint does not change for a server that keeps the default.
    let config = |per_instance| {
        let mut config = manifest.functions[&name("x")].config.clone();
        config.server.as_mut().unwrap().concurrency_per_instance = per_instance;
        serde_json::to_string(&config).unwrap()
    };
    assert!(!config(1).contains("concurrency_per_instance") && config(8).contains("\"concurrency_per_instance\":8"));
}

#[test]
fn an_http_trigger_may_name_an_alias_and_a_description_is_kept() {
    let manifest = parse(&with_function(
        "description = \"Says hello\"\ntriggers = [{ http = \"GET /stable\", alias = \"stable\" }]",
    ))
    .unwrap();
    let config = &manifest.functions[&name("hello")].config;
    assert_eq!(config.description.as_deref(), Some("Says hello"));
    let Trigger::Http(trigger) = &config.triggers[0] else { panic!("{:?}", config.triggers) };
    assert_eq!(trigger.alias.as_ref().map(|alias| alias.as_str()), Some("stable"));

    let (field, message) = problem(&with_function("triggers = [{ http = \"GET /x\", alias = \"12\" }]"));
    assert_eq!(field, "functions.hello.triggers[0].alias");
    assert!(message.contains("number names a version"), "{message}");
    let (field, message) = problem(&with_function("triggers = [{ schedule = \"rate(1 minute)\", alias = \"live\" }]"));
    assert_eq!(field, "functions.hello.triggers[0].alias");
    assert!(message.contains("for http, topic, queue triggers"), "{message}");
    let (field, message) = problem(&with_function(&format!("description = \"{}\"", "x".repeat(257))));
    assert_eq!(field, "functions.hello.description");
    assert!(message.contains("256"), "{message}");
}

#[test]
fn an_http_trigger_may_ask_for_rest_api_events() {
    let manifest =
        parse(&with_function("triggers = [{ http = \"GET /a\", payload_format = \"1.0\" }, { http = \"GET /b\" }]"))
            .unwrap();
    let config = &manifest.functions[&name("hello")].config;
    let formats: Vec<_> = config
        .triggers
        .iter()
        .map(|trigger| match trigger {
            Trigger::Http(http) => http.payload_format,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(formats, [crate::PayloadFormat::RestApi, crate::PayloadFormat::HttpApi]);
    // The default is not written, so configurations made before it keep their fingerprint.
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(json.matches("payload_format").count(), 1, "{json}");
    let (field, message) = problem(&with_function("triggers = [{ http = \"GET /x\", payload_format = \"3.0\" }]"));
    assert_eq!(field, "functions.hello.triggers[0].payload_format");
    assert!(message.contains("\"1.0\" (REST API events"), "{message}");
    let (field, message) = problem(&with_function("triggers = [{ topic = \"t\", payload_format = \"1.0\" }]"));
    assert_eq!(field, "functions.hello.triggers[0].payload_format");
    assert!(message.contains("for http triggers"), "{message}");
}

#[test]
fn topic_and_queue_triggers_may_name_an_alias() {
    let manifest = parse(&with_function(
        "triggers = [{ topic = \"t\", alias = \"live\" }, { queue = \"jobs\", alias = \"stable\" }, { topic = \"u\" }]",
    ))
    .unwrap();
    let triggers = &manifest.functions[&name("hello")].config.triggers;
    let aliases: Vec<Option<&str>> = triggers
        .iter()
        .map(|trigger| match trigger {
            Trigger::Topic(topic) => topic.alias.as_ref().map(|alias| alias.as_str()),
            Trigger::Queue(queue) => queue.alias.as_ref().map(|alias| alias.as_str()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(aliases, [Some("live"), Some("stable"), None]);
    // A trigger without an alias keeps the stored form (and so the version) it had.
    let stored = serde_json::to_string(&triggers[2]).unwrap();
    assert!(!stored.contains("alias"), "{stored}");
}

#[test]
fn a_manifest_declares_aliases_by_version_number_or_latest() {
    let manifest = parse(&with_function("aliases = { live = \"$LATEST\", stable = 3 }")).unwrap();
    let aliases: Vec<(&str, Option<u32>)> = manifest.functions[&name("hello")]
        .aliases
        .iter()
        .map(|(alias, version)| (alias.as_str(), version.map(|v| v.0)))
        .collect();
    assert_eq!(aliases, [("live", None), ("stable", Some(3))]);

    let problems = problems(&with_function("aliases = { stable = 0, beta = \"latest\", 12 = 1 }"));
    let fields: Vec<&str> = problems.iter().map(|(field, _)| field.as_str()).collect();
    assert_eq!(
        fields,
        ["functions.hello.aliases.12", "functions.hello.aliases.beta", "functions.hello.aliases.stable"]
    );
    assert!(problems[1].1.contains("version number") && problems[1].1.contains("$LATEST"), "{problems:?}");
    assert!(problems[0].1.contains("number names a version"), "{problems:?}");
    let (field, _) = problem(&with_function("aliases = [\"live\"]"));
    assert_eq!(field, "functions.hello.aliases");
}
