//! Commands that read or change one thing and print it: human tables by default,
//! JSON with `--output json`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use updraft_api::views::{
    AccessKeyCreatedView, AccessKeyListView, FunctionListView, FunctionView, InvocationListView, LogLineView,
    LogListView, UsageReportView, VersionListView,
};

use crate::client::{Client, error_from};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Human,
    Json,
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub async fn list(client: &Client, output: Output) -> anyhow::Result<()> {
    // Every page, in order.
    let mut view: FunctionListView = client.get("/v1/functions").await?;
    while let Some(after) = view.next_after.take() {
        let next: FunctionListView = client.get(&format!("/v1/functions?after={after}")).await?;
        view.functions.extend(next.functions);
        view.next_after = next.next_after;
    }
    if output == Output::Json {
        return print_json(&view);
    }
    if view.functions.is_empty() {
        println!("no functions; deploy some with `updraft deploy`");
        return Ok(());
    }
    println!("{:<24} {:<16} {:>7} {:>9} {:>8}  TRIGGERS", "NAME", "APP", "VERSION", "MEMORY", "TIMEOUT");
    for f in &view.functions {
        let routes = triggers(&f.config);
        println!(
            "{:<24} {:<16} {:>7} {:>9} {:>8}  {}",
            f.name,
            f.app,
            f.version,
            format!("{}MiB", f.config.memory_bytes / (1024 * 1024)),
            format!("{}ms", f.config.timeout_ms),
            routes.join(", ")
        );
    }
    Ok(())
}

/// What sets a function off, in a few words each: its routes (`GET /x`, `POST /hook
/// webhook`), topics, queues, schedules and email addresses.
fn triggers(config: &updraft_api::views::ConfigView) -> Vec<String> {
    let routes = config.routes.iter().map(|r| match r.kind.as_str() {
        "webhook" => format!("{} {} webhook", r.methods, r.route),
        _ => format!("{} {}", r.methods, r.route),
    });
    let topics = config.topics.iter().map(|topic| format!("topic {topic}"));
    let queues = config.queues.iter().map(|queue| format!("queue {}", queue.queue));
    let schedules = config.schedules.iter().map(|schedule| format!("schedule {}", schedule.schedule));
    let emails = config.emails.iter().map(|address| format!("email {address}"));
    routes.chain(topics).chain(queues).chain(schedules).chain(emails).collect()
}

pub async fn describe(client: &Client, name: &str, output: Output) -> anyhow::Result<()> {
    let f: FunctionView = client.get(&format!("/v1/functions/{name}")).await?;
    if output == Output::Json {
        return print_json(&f);
    }
    let c = &f.config;
    println!("name:        {}", f.name);
    println!("app:         {}", f.app);
    println!("version:     {} (latest {})", f.version, f.latest_version);
    if let Some(canary) = &f.canary {
        let left = u64::try_from(canary.ends_at_ms - updraft_model::now_millis()).unwrap_or(0) / 1000;
        println!(
            "canary:      {:.0}% on v{}, the rest on v{}, promoted in {} unless it fails (updraft promote / rollback)",
            canary.percent,
            f.version,
            canary.previous_version,
            updraft_model::format_duration(std::time::Duration::from_secs(left))
        );
    }
    println!("runtime:     {}", c.runtime);
    if let Some(handler) = &c.handler {
        println!("handler:     {handler}");
    }
    if let Some(command) = &c.command {
        println!("command:     {command}");
        println!("readiness:   GET {}", c.readiness_path.as_deref().unwrap_or("/"));
    }
    println!("artifact:    {}", c.artifact);
    println!("memory:      {} MiB", c.memory_bytes / (1024 * 1024));
    println!("timeout:     {} ms", c.timeout_ms);
    println!("concurrency: {}", c.concurrency.map_or("account limit".to_owned(), |n| n.to_string()));
    println!("reuse:       {}", if c.instance_reuse { "instances are reused" } else { "fresh instance per request" });
    if c.concurrency_per_instance > 1 {
        println!("per instance: up to {} requests at once", c.concurrency_per_instance);
    }
    let hosts =
        if c.allowed_outbound_hosts.is_empty() { "none".to_owned() } else { c.allowed_outbound_hosts.join(", ") };
    println!("outbound:    {hosts}");
    println!("env:         {}", c.env.keys().cloned().collect::<Vec<_>>().join(", "));
    if !c.secret_env.is_empty() {
        let secrets: Vec<String> =
            c.secret_env.iter().map(|(variable, secret)| format!("{variable} (secret {secret})")).collect();
        println!("secrets:     {}", secrets.join(", "));
    }
    println!("routes:");
    for r in &c.routes {
        let signer = r.secret.as_ref().map(|secret| format!("secret {secret}")).or_else(|| r.secret_env.clone());
        let note = match (r.kind.as_str(), r.auth.as_str(), signer) {
            ("webhook", _, Some(secret)) => format!("  (webhook: 202, delivered later; signed with {secret})"),
            ("webhook", _, None) => "  (webhook: 202, delivered later)".to_owned(),
            (_, "key", _) => "  (API key required)".to_owned(),
            _ => String::new(),
        };
        let alias = r.alias.as_ref().map(|alias| format!("  (served by alias {alias})")).unwrap_or_default();
        let format = if r.payload_format == "1.0" { "  (REST API events, payload 1.0)" } else { "" };
        println!("  {} {}{note}{alias}{format}", r.methods, r.route);
    }
    if !c.topics.is_empty() {
        let topics: Vec<String> = c
            .topics
            .iter()
            .map(|topic| match c.topic_aliases.get(topic) {
                Some(alias) => format!("{topic} (alias {alias})"),
                None => topic.clone(),
            })
            .collect();
        println!("topics:      {}", topics.join(", "));
    }
    if !c.emails.is_empty() {
        println!("email:       {}", c.emails.join(", "));
    }
    for queue in &c.queues {
        let alias = queue.alias.as_ref().map(|alias| format!(", alias {alias}")).unwrap_or_default();
        println!(
            "queue:       {} (batches of {}, window {} ms, visibility {} ms, after {} receives to {}{alias})",
            queue.queue,
            queue.batch_size,
            queue.batch_window_ms,
            queue.visibility_timeout_ms,
            queue.max_receives,
            queue.dead_letter_queue
        );
    }
    for schedule in &c.schedules {
        println!("schedule:    {} ({}, catch-up {})", schedule.schedule, schedule.timezone, schedule.catch_up);
    }
    println!("async:       {} retries, max age {} s", c.retries, c.max_event_age_ms / 1000);
    if c.recursive_loop_allowed {
        println!("loops:       allowed (recursive_loop = \"allow\": a chain of invocations is never stopped)");
    }
    if !c.publishes.is_empty() {
        println!("publishes:   {}", c.publishes.join(", "));
    }
    if !c.starts.is_empty() {
        println!("starts:      {}", c.starts.join(", "));
    }
    for (label, destination) in
        [("on success", &c.on_success), ("on failure", &c.on_failure), ("dead letter", &c.dead_letter_topic)]
    {
        if let Some(destination) = destination {
            println!("{:<12} {destination}", format!("{label}:"));
        }
    }
    Ok(())
}

pub async fn versions(client: &Client, name: &str, output: Output) -> anyhow::Result<()> {
    let view: VersionListView = client.get(&format!("/v1/functions/{name}/versions")).await?;
    if output == Output::Json {
        return print_json(&view);
    }
    println!("{:>7}  {:<8} {:<20} ARTIFACT", "VERSION", "SERVING", "CREATED (ms)");
    for v in &view.versions {
        println!(
            "{:>7}  {:<8} {:<20} {}",
            v.version,
            if v.current { "yes" } else { "" },
            v.created_at_ms,
            v.config.artifact
        );
    }
    Ok(())
}

pub async fn rollback(client: &Client, name: &str, to: Option<u32>, output: Output) -> anyhow::Result<()> {
    let body = serde_json::json!({ "to": to });
    let f: FunctionView = client.post_json(&format!("/v1/functions/{name}/rollback"), &body).await?;
    if output == Output::Json {
        return print_json(&f);
    }
    println!("{} now serves version {} (latest {})", f.name, f.version, f.latest_version);
    Ok(())
}

pub async fn invoke(client: &Client, name: &str, body: Vec<u8>, output: Output) -> anyhow::Result<ExitCode> {
    let request = client
        .request(reqwest::Method::POST, &format!("/v1/functions/{name}/invoke"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    let response = request.send().await.with_context(|| format!("cannot reach {}", client.endpoint()))?;
    // A platform error (not found, timeout, trap) is marked; the function's own
    // answer, whatever its status, is printed as it is.
    if response.headers().contains_key("x-updraft-error") {
        return Err(error_from(response).await);
    }
    let status = response.status();
    let request_id = header(&response, updraft_api::REQUEST_ID_HEADER);
    let version = header(&response, "x-updraft-version");
    let bytes = response.bytes().await.context("reading the function's response")?;
    match output {
        Output::Json => {
            let body = String::from_utf8_lossy(&bytes);
            let body_json = serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap_or(serde_json::Value::String(body.into_owned()));
            print_json(&serde_json::json!({
                "status": status.as_u16(),
                "version": version,
                "request_id": request_id,
                "body": body_json,
            }))?;
        }
        Output::Human => {
            std::io::stdout().write_all(&bytes)?;
            if !bytes.ends_with(b"\n") && !bytes.is_empty() {
                println!();
            }
            if !status.is_success() {
                eprintln!("function answered {status} (request {request_id})");
            }
        }
    }
    Ok(if status.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `updraft invoke NAME --http 'METHOD /path'`: the request sent to the server's
/// gateway as any client would send it (without the CLI's token), once the function is
/// known to have a route that takes it.
pub async fn invoke_http(
    client: &Client,
    name: &str,
    line: &str,
    body: Vec<u8>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let (method, target) = crate::samples::request_line(line)?;
    let function: FunctionView = client.get(&format!("/v1/functions/{name}")).await?;
    let path = target.split('?').next().unwrap_or("/");
    let routes = &function.config.routes;
    let takes = |route: &updraft_api::views::RouteView| {
        let methods = route.methods == "*" || route.methods.split(',').any(|m| m.trim() == method.as_str());
        let pattern = updraft_model::RoutePattern::parse(&route.route).is_ok_and(|pattern| pattern.matches(path));
        methods && pattern
    };
    if !routes.iter().any(takes) {
        let listed: Vec<String> = routes.iter().map(|route| format!("{} {}", route.methods, route.route)).collect();
        anyhow::bail!(
            "{name} has no route for {method} {path}; its routes: {}",
            if listed.is_empty() { "none (invoke it with an event instead)".to_owned() } else { listed.join(", ") }
        );
    }
    let url = format!("{}{target}", client.endpoint().trim_end_matches('/'));
    let response = reqwest::Client::new()
        .request(method, &url)
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {}", client.endpoint()))?;
    let status = response.status();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let bytes = response.bytes().await.context("reading the function's response")?;
    match output {
        Output::Json => {
            let body = serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            let headers: serde_json::Map<String, serde_json::Value> =
                headers.into_iter().map(|(name, value)| (name, serde_json::Value::String(value))).collect();
            print_json(&serde_json::json!({ "status": status.as_u16(), "headers": headers, "body": body }))?;
        }
        Output::Human => {
            println!("{status}");
            for (name, value) in &headers {
                println!("{name}: {value}");
            }
            println!();
            std::io::stdout().write_all(&bytes)?;
            if !bytes.ends_with(b"\n") && !bytes.is_empty() {
                println!();
            }
        }
    }
    Ok(if status.is_server_error() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// What `updraft logs` asks for.
pub struct LogSearch {
    pub function: Option<String>,
    pub app: Option<String>,
    pub tail: i64,
    pub since: Option<Duration>,
    pub grep: Option<String>,
    pub request_id: Option<String>,
    pub level: Option<updraft_model::LogLevel>,
}

impl LogSearch {
    /// The path and the filters every page is read with.
    fn request(&self) -> (String, Vec<(&'static str, String)>) {
        let mut query = Vec::new();
        let path = match (&self.function, &self.app) {
            (Some(function), _) => format!("/v1/functions/{function}/logs"),
            (None, app) => {
                query.extend(app.iter().map(|app| ("app", app.clone())));
                "/v1/logs".to_owned()
            }
        };
        if let Some(since) = self.since {
            query.push(("since", (updraft_model::now_millis() - since.as_millis() as i64).to_string()));
        }
        query.extend(self.grep.iter().map(|text| ("grep", text.clone())));
        query.extend(self.request_id.iter().map(|id| ("request_id", id.clone())));
        query.extend(self.level.iter().map(|level| ("level", level.to_string())));
        (path, query)
    }
}

/// Prints the latest matching lines (or, with `--since`, every one since then, page by
/// page); with `follow`, then each new one as it arrives.
pub async fn logs(client: &Client, search: &LogSearch, follow: bool, output: Output) -> anyhow::Result<()> {
    let (path, filters) = search.request();
    let many_functions = search.function.is_none();
    let page = |extra: Vec<(&'static str, String)>| {
        let mut query = filters.clone();
        query.extend(extra);
        client.get_query::<LogListView>(&path, query)
    };
    let mut after = if search.since.is_some() {
        let mut after = 0;
        loop {
            let view = page(vec![("after", after.to_string()), ("limit", "1000".to_owned())]).await?;
            print_lines(&view.lines, many_functions, output)?;
            after = view.next_after;
            if view.lines.len() < 1000 {
                break after;
            }
        }
    } else {
        let tail = search.tail.clamp(1, 1000).to_string();
        let view = page(vec![("tail", "true".to_owned()), ("limit", tail)]).await?;
        print_lines(&view.lines, many_functions, output)?;
        view.next_after
    };
    if !follow {
        return Ok(());
    }
    loop {
        // Long poll: the server answers as soon as a line arrives, or empty after the
        // wait, so following costs one request per batch of lines.
        let extra = vec![("after", after.to_string()), ("limit", "1000".to_owned()), ("wait_ms", "25000".to_owned())];
        let view = page(extra).await?;
        print_lines(&view.lines, many_functions, output)?;
        after = view.next_after;
        if view.lines.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn print_lines(lines: &[LogLineView], with_function: bool, output: Output) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    for line in lines {
        match output {
            Output::Json => writeln!(stdout, "{}", serde_json::to_string(line)?)?,
            Output::Human if with_function => {
                writeln!(stdout, "{} {} {} {}", line.function, line.request_id, line.stream, line.line)?;
            }
            Output::Human => writeln!(stdout, "{} {} {}", line.request_id, line.stream, line.line)?,
        }
    }
    stdout.flush()?;
    Ok(())
}

/// What `updraft invocations` asks for.
pub struct InvocationQuery {
    pub function: Option<String>,
    pub status: Option<String>,
    pub since: Option<Duration>,
    pub limit: i64,
}

pub async fn invocations(client: &Client, query: &InvocationQuery, output: Output) -> anyhow::Result<()> {
    let mut path = format!("/v1/invocations?limit={}", query.limit.clamp(1, 1000));
    if let Some(function) = &query.function {
        path.push_str(&format!("&function={function}"));
    }
    if let Some(status) = &query.status {
        path.push_str(&format!("&status={status}"));
    }
    if let Some(since) = query.since {
        path.push_str(&format!("&since={}", updraft_model::now_millis() - since.as_millis() as i64));
    }
    let view: InvocationListView = client.get(&path).await?;
    if output == Output::Json {
        return print_json(&view);
    }
    if view.invocations.is_empty() {
        println!("no invocations recorded");
        return Ok(());
    }
    println!(
        "{:<36} {:<16} {:>4} {:<9} {:>11} {:>11} {:>9}  ERROR",
        "ID", "FUNCTION", "VER", "STATUS", "DURATION", "INIT", "MEMORY"
    );
    for i in &view.invocations {
        let init = i.init_duration_ms.map(|ms| format!("{ms:.2}ms")).unwrap_or_else(|| "-".to_owned());
        let error = i.error_type.as_deref().unwrap_or("");
        println!(
            "{:<36} {:<16} {:>4} {:<9} {:>11} {:>11} {:>9}  {error}",
            i.id,
            i.function,
            i.version,
            i.status,
            format!("{:.2}ms", i.duration_ms),
            init,
            format!("{}/{}MB", i.max_memory_used_mb, i.memory_limit_mb),
        );
    }
    Ok(())
}

pub async fn usage(client: &Client, since: Duration, function: Option<&str>, output: Output) -> anyhow::Result<()> {
    let mut path = format!("/v1/usage?since={}", updraft_model::now_millis() - since.as_millis() as i64);
    if let Some(function) = function {
        path.push_str(&format!("&function={function}"));
    }
    let view: UsageReportView = client.get(&path).await?;
    if output == Output::Json {
        return print_json(&view);
    }
    println!(
        "prices: ${} per 1M requests, ${} per GB-second",
        view.prices.per_million_requests_usd, view.prices.per_gb_second_usd
    );
    println!(
        "{:<24} {:>10} {:>14} {:>8} {:>9} {:>7} {:>12}",
        "FUNCTION", "REQUESTS", "GB-SECONDS", "COLD", "THROTTLED", "ERRORS", "COST (USD)"
    );
    let rows = view.functions.iter().map(|f| (f.function.as_str(), &f.usage)).chain([("total", &view.total)]);
    for (name, u) in rows {
        println!(
            "{:<24} {:>10} {:>14.3} {:>8} {:>9} {:>7} {:>12.6}",
            name, u.requests, u.gb_seconds, u.cold_starts, u.throttles, u.errors, u.cost_usd
        );
    }
    Ok(())
}

pub async fn async_events(client: &Client, command: crate::cli::AsyncCommand, output: Output) -> anyhow::Result<()> {
    use crate::cli::AsyncCommand;
    use updraft_api::views::{AsyncEventListView, AsyncEventView, AsyncRetriedView};
    match command {
        AsyncCommand::Ls { function, limit } => {
            let mut query = vec![("limit", limit.clamp(1, 1000).to_string())];
            query.extend(function.map(|function| ("function", function)));
            let list: AsyncEventListView = client.get_query("/v1/async/failed", query).await?;
            if output == Output::Json {
                return print_json(&list);
            }
            if list.events.is_empty() {
                println!("no failed asynchronous invocations");
                return Ok(());
            }
            println!("{:<36}  {:<20} {:<9} {:>8}  LAST ERROR", "ID", "FUNCTION", "TRIGGER", "ATTEMPTS");
            for event in &list.events {
                let error = event.last_error.as_deref().unwrap_or("-").lines().next().unwrap_or_default();
                println!(
                    "{:<36}  {:<20} {:<9} {:>8}  {}",
                    event.id, event.function, event.trigger, event.attempts, error
                );
            }
        }
        AsyncCommand::Retry { id: Some(id), .. } => {
            let event: AsyncEventView = client.post(&format!("/v1/async/{id}/retry")).await?;
            match output {
                Output::Json => print_json(&event)?,
                Output::Human => println!("retrying {} ({}): queued again", event.id, event.function),
            }
        }
        AsyncCommand::Retry { id: None, function, .. } => {
            let query: Vec<(&str, String)> = function.map(|function| ("function", function)).into_iter().collect();
            let retried: AsyncRetriedView = client.post_query("/v1/async/retry", query).await?;
            match output {
                Output::Json => print_json(&retried)?,
                Output::Human => println!("retrying {} failed asynchronous invocations", retried.retried),
            }
        }
    }
    Ok(())
}

pub async fn keys(client: &Client, command: crate::cli::KeysCommand, output: Output) -> anyhow::Result<()> {
    use crate::cli::KeysCommand;
    match command {
        KeysCommand::Create => {
            let key: AccessKeyCreatedView = client.post_json("/v1/keys", &serde_json::json!({})).await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&key)?),
                Output::Human => {
                    println!("export AWS_ACCESS_KEY_ID={}", key.access_key_id);
                    println!("export AWS_SECRET_ACCESS_KEY={}", key.secret_access_key);
                    println!("export AWS_DEFAULT_REGION={}", key.region);
                    eprintln!(
                        "# the secret is shown only now; then e.g. `aws lambda invoke --endpoint-url {} --function-name NAME out.json`",
                        client.endpoint()
                    );
                }
            }
        }
        KeysCommand::Ls => {
            let list: AccessKeyListView = client.get("/v1/keys").await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&list)?),
                Output::Human => {
                    println!("{:<24} {:<8} CREATED (ms)", "ACCESS KEY ID", "ROLE");
                    for key in &list.keys {
                        println!("{:<24} {:<8} {}", key.access_key_id, key.role, key.created_at);
                    }
                }
            }
        }
        KeysCommand::Delete { id } => {
            client.delete(&format!("/v1/keys/{id}")).await?;
            match output {
                Output::Json => println!("{}", serde_json::json!({ "deleted": id })),
                Output::Human => println!("deleted {id}"),
            }
        }
    }
    Ok(())
}

pub async fn execution(client: &Client, id: &str, output: Output) -> anyhow::Result<()> {
    let view: updraft_api::views::ExecutionView = client.get(&format!("/v1/executions/{id}")).await?;
    if output == Output::Json {
        return print_json(&view);
    }
    println!("execution: {}", view.id);
    println!("workflow:  {} (app {})", view.workflow, view.app);
    println!("status:    {}", view.status);
    println!("state:     {}", view.state);
    if let Some(result) = &view.output {
        println!("output:    {result}");
    }
    if let Some(error) = &view.error {
        println!("error:     {error}: {}", view.cause.as_deref().unwrap_or(""));
    }
    println!("history:");
    for entry in &view.history {
        let detail = entry.detail.as_ref().map(ToString::to_string).unwrap_or_default();
        let detail =
            if detail.len() > 100 { format!("{}…", &detail[..detail.floor_char_boundary(100)]) } else { detail };
        println!("  {:>3}  {:<18} {:<16} {detail}", entry.seq, entry.kind, entry.state.as_deref().unwrap_or(""));
    }
    Ok(())
}

/// `updraft doctor`: the server's sandbox layers; exits 1 when Lambda functions cannot
/// run.
pub async fn doctor(client: &Client, output: Output) -> anyhow::Result<ExitCode> {
    let view: updraft_api::views::StatusView = client.get("/v1/status").await?;
    let ready = view.sandbox.as_ref().is_none_or(|sandbox| sandbox.ready);
    if output == Output::Json {
        print_json(&view)?;
        return Ok(if ready { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    println!("server:      {} (node {})", view.version, view.node_id);
    println!("wasm:        ready (pooling allocator {})", if view.pooling { "on" } else { "off" });
    println!("events:      {}", view.event_queue);
    let Some(sandbox) = &view.sandbox else {
        println!("lambda:      not started on this server");
        return Ok(ExitCode::SUCCESS);
    };
    println!("lambda:      {}", if sandbox.ready { "ready" } else { "cannot run: a sandbox layer is missing" });
    for layer in &sandbox.layers {
        println!("  {:<14} {:<16} {}", layer.layer, layer.state, layer.detail);
        if let Some(fix) = &layer.fix {
            println!("  {:<14} {:<16} fix: {fix}", "", "");
        }
    }
    if !sandbox.ready {
        let missing: Vec<&str> =
            sandbox.layers.iter().filter(|l| l.state == "missing").map(|l| l.layer.as_str()).collect();
        println!(
            "Lambda functions are refused until each missing layer is fixed, or the server is started with --sandbox-allow-missing {}",
            missing.join(",")
        );
    }
    Ok(if ready { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `updraft secrets ...`.
pub async fn secrets(client: &Client, command: crate::cli::SecretsCommand, output: Output) -> anyhow::Result<()> {
    use crate::cli::SecretsCommand;
    match command {
        SecretsCommand::Set { name } => {
            use std::io::Read;
            let mut value = String::new();
            std::io::stdin().read_to_string(&mut value).context("reading the secret's value from standard input")?;
            // A value typed or piped with `echo` ends in a newline that is not part of it.
            let value =
                value.strip_suffix('\n').map(|v| v.strip_suffix('\r').unwrap_or(v)).unwrap_or(&value).to_owned();
            let view: updraft_api::views::SecretSetView =
                client.put_text(&format!("/v1/secrets/{name}"), value).await?;
            match output {
                Output::Json => print_json(&view)?,
                Output::Human => {
                    let what = if view.created { "set" } else { "replaced" };
                    let users = if view.used_by.is_empty() {
                        String::new()
                    } else {
                        format!("; {} get the new value in instances started from now on", view.used_by.join(", "))
                    };
                    println!("{what} secret {}{users}", view.name);
                }
            }
        }
        SecretsCommand::Ls => {
            let view: updraft_api::views::SecretListView = client.get("/v1/secrets").await?;
            if output == Output::Json {
                return print_json(&view);
            }
            println!("{:<32} {:<20} USED BY", "NAME", "UPDATED");
            for secret in &view.secrets {
                println!("{:<32} {:<20} {}", secret.name, ago(secret.updated_at_ms), secret.used_by.join(", "));
            }
        }
        SecretsCommand::Rm { name } => {
            client.delete(&format!("/v1/secrets/{name}")).await?;
            match output {
                Output::Json => println!("{}", serde_json::json!({ "deleted": name })),
                Output::Human => println!("deleted secret {name}"),
            }
        }
        SecretsCommand::RotateKey => {
            let view: updraft_api::views::KeyRotatedView = client.post("/v1/secrets-key/rotate").await?;
            match output {
                Output::Json => print_json(&view)?,
                Output::Human => println!(
                    "rotated the secrets key: {} sealed values sealed again with the new one (the server's secrets.key was replaced)",
                    view.resealed
                ),
            }
        }
    }
    Ok(())
}

/// `updraft tokens rotate FUNCTION`.
pub async fn tokens_rotate(client: &Client, function: &str, output: Output) -> anyhow::Result<()> {
    let view: updraft_api::views::TokenRotatedView =
        client.post(&format!("/v1/functions/{function}/tokens/rotate")).await?;
    match output {
        Output::Json => print_json(&view)?,
        Output::Human => println!(
            "rotated {}'s token (generation {}): earlier tokens are refused, and its instances get the new one",
            view.function, view.generation
        ),
    }
    Ok(())
}

pub async fn nodes(client: &Client, output: Output) -> anyhow::Result<()> {
    let view: updraft_api::views::NodeListView = client.get("/v1/nodes").await?;
    if output == Output::Json {
        return print_json(&view);
    }
    println!(
        "{:<38} {:<26} {:<7} {:>9} {:>9} {:>14}  WARM",
        "NODE", "ADDRESS", "STATE", "IN-FLIGHT", "INSTANCES", "HEARTBEAT"
    );
    for node in &view.nodes {
        let marker = if node.this_node { " *" } else { "" };
        println!(
            "{:<38} {:<26} {:<7} {:>9} {:>9} {:>14}  {}",
            format!("{}{marker}", node.id),
            node.address,
            node.state,
            node.in_flight,
            node.instances,
            // The database's clock measured the silence: the CLI's may differ.
            elapsed(node.silent_for_ms / 1000),
            node.warm_functions.join(", ")
        );
    }
    println!("(* the node that answered; a node silent for {}ms is dead)", view.dead_after_ms);
    Ok(())
}

pub async fn traces(client: &Client, function: Option<&str>, limit: usize, output: Output) -> anyhow::Result<()> {
    let mut path = format!("/v1/traces?limit={}", limit.clamp(1, 100));
    if let Some(function) = function {
        path.push_str(&format!("&function={function}"));
    }
    let view: updraft_api::views::TraceListView = client.get(&path).await?;
    if output == Output::Json {
        return print_json(&view);
    }
    if view.traces.is_empty() {
        println!("no traces recorded");
        return Ok(());
    }
    println!("{:<32} {:<24} {:>11} {:>11} {:>6}  STARTED", "TRACE", "ROOT", "DURATION", "INVOCATIONS", "FAILED");
    for trace in &view.traces {
        println!(
            "{:<32} {:<24} {:>11} {:>11} {:>6}  {}",
            trace.trace_id,
            trace.root,
            format!("{:.2}ms", trace.duration_ms),
            trace.invocations,
            trace.failed,
            ago(trace.started_at_ms)
        );
    }
    println!("(`updraft traces TRACE` shows one)");
    Ok(())
}

/// One trace as a waterfall: each span indented under its parent, with a bar placing
/// it in the trace's time.
pub async fn trace(client: &Client, trace_id: &str, output: Output) -> anyhow::Result<()> {
    let view: updraft_api::views::TraceView = client.get(&format!("/v1/traces/{trace_id}")).await?;
    if output == Output::Json {
        return print_json(&view);
    }
    let summary = &view.summary;
    println!(
        "trace {}: {} invocations, {} failed, {:.2}ms",
        summary.trace_id, summary.invocations, summary.failed, summary.duration_ms
    );
    for line in waterfall(&view.spans, 40) {
        println!("{line}");
    }
    Ok(())
}

/// The lines of a waterfall `width` columns wide: spans depth-first under their
/// parents (a span whose parent is not in the trace, such as the caller's, is a root),
/// each with its bar, duration and, for an invocation, its id and status; then the spans
/// it links to (a queue batch's senders).
fn waterfall(spans: &[updraft_api::views::SpanView], width: usize) -> Vec<String> {
    let start = spans.iter().map(|span| span.start_us).min().unwrap_or(0);
    let end = spans.iter().map(|span| span.start_us + span.duration_us).max().unwrap_or(start);
    let total = (end - start).max(1) as f64;
    let known: std::collections::HashSet<&str> = spans.iter().map(|span| span.span_id.as_str()).collect();
    let is_root = |span: &&updraft_api::views::SpanView| {
        span.parent_span_id.as_deref().is_none_or(|parent| !known.contains(parent))
    };
    let mut lines = Vec::new();
    let mut stack: Vec<(&updraft_api::views::SpanView, usize)> =
        spans.iter().filter(is_root).rev().map(|span| (span, 0)).collect();
    while let Some((span, depth)) = stack.pop() {
        let from = (((span.start_us - start) as f64 / total) * width as f64) as usize;
        let length = ((span.duration_us as f64 / total) * width as f64).ceil().max(1.0) as usize;
        let from = from.min(width - 1);
        let bar = format!("{}{}", " ".repeat(from), "█".repeat(length.min(width - from)));
        let label = format!("{}{}", "  ".repeat(depth), span.name);
        let mut detail = String::new();
        if let Some(id) = span.attributes.get("faas.invocation_id").and_then(|id| id.as_str()) {
            let status = span.attributes.get("updraft.status").and_then(|s| s.as_str()).unwrap_or("");
            let trigger = span.attributes.get("updraft.trigger").and_then(|t| t.as_str()).unwrap_or("");
            detail = format!("  {trigger} {status} {id}");
        }
        if let Some(error) = &span.error {
            detail.push_str(&format!("  error: {error}"));
        }
        lines.push(format!(
            "{label:<28} |{bar:<width$}| {:>10}{detail}",
            format!("{:.2}ms", span.duration_us as f64 / 1000.0)
        ));
        // A batch's messages were sent in other traces: where to look for each.
        for link in &span.links {
            lines.push(format!("{}  linked: trace {} span {}", "  ".repeat(depth), link.trace_id, link.span_id));
        }
        let children = spans.iter().filter(|child| child.parent_span_id.as_deref() == Some(span.span_id.as_str()));
        let children: Vec<_> = children.collect();
        stack.extend(children.into_iter().rev().map(|child| (child, depth + 1)));
    }
    lines
}

/// How long ago a time (ms since the epoch) was, roughly: `12s ago`, `5m ago`, `3h ago`, `2d ago`.
fn ago(at_ms: i64) -> String {
    let now = updraft_model::now_millis();
    elapsed(u64::try_from(now - at_ms).unwrap_or(0) / 1000)
}

/// `12s ago`, `5m ago`, `3h ago`, `2d ago`.
fn elapsed(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86_400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use updraft_api::views::SpanView;

    use super::*;

    fn span(id: &str, parent: Option<&str>, name: &str, start_us: i64, duration_us: i64) -> SpanView {
        SpanView {
            span_id: id.to_owned(),
            parent_span_id: parent.map(str::to_owned),
            name: name.to_owned(),
            kind: "server".to_owned(),
            start_us,
            duration_us,
            error: None,
            attributes: Default::default(),
            links: Vec::new(),
        }
    }

    #[test]
    fn a_waterfall_nests_spans_under_their_parents_and_places_their_bars_in_time() {
        // The caller's span (c0) is not in the trace: its child is a root.
        let spans = [
            span("a1", Some("c0"), "front", 0, 100),
            span("a2", Some("a1"), "run", 0, 40),
            span("b1", Some("a1"), "worker", 50, 50),
            span("b2", Some("b1"), "run", 60, 40),
        ];
        let lines = waterfall(&spans, 10);
        let labels: Vec<&str> = lines.iter().map(|line| line.split('|').next().unwrap().trim_end()).collect();
        assert_eq!(labels, ["front", "  run", "  worker", "    run"]);
        let bars: Vec<&str> = lines.iter().map(|line| line.split('|').nth(1).unwrap()).collect();
        assert_eq!(bars[0], "██████████");
        assert_eq!(bars[1], "████      ");
        assert_eq!(bars[2], "     █████");
        assert!(lines[3].contains("0.04ms"), "{}", lines[3]);
    }
}
