//! `updraft up`: a local server with the app(s) in a folder deployed, redeployed when
//! their files change.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use notify::{RecursiveMode, Watcher};

use crate::cli::{Global, UpArgs};
use crate::client::Client;
use crate::deploy::{deploy_dir, is_app};
use crate::output::Output;

/// The app folders under `dir`: `dir` itself if it has an updraft.toml (or a SAM
/// template), else each subfolder that has one.
pub fn app_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if is_app(dir) {
        return Ok(vec![dir.to_owned()]);
    }
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| is_app(p)).collect();
    dirs.sort();
    if dirs.is_empty() {
        bail!("no updraft.toml or SAM template.yaml in {} or its subfolders; create one (see README)", dir.display());
    }
    Ok(dirs)
}

pub async fn run(global: &Global, args: &UpArgs) -> anyhow::Result<ExitCode> {
    crate::server::init_tracing();
    let apps = app_dirs(&args.dir)?;
    let running = crate::server::start(global, &args.server).await?;
    let endpoint = format!("http://{}", running.addr);
    let token = std::fs::read_to_string(global.data_dir().join("admin-token"))
        .map(|t| t.trim().to_owned())
        .or_else(|_| global.token.clone().ok_or(()))
        .map_err(|()| anyhow::anyhow!("the admin token is missing from the data dir; set UPDRAFT_TOKEN"))?;
    let client = Client::with_token(&endpoint, token)?;

    let mut failed = false;
    for app in &apps {
        if let Err(error) = deploy_dir(&client, app, Output::Human).await {
            failed = true;
            eprintln!("error: deploying {}: {error:#}", app.display());
        }
    }
    print_routes(&running, &endpoint);
    if args.no_watch {
        if failed {
            eprintln!("some apps failed to deploy; serving the rest");
        }
    } else {
        let watch = watch(&client, &apps);
        tokio::select! {
            result = watch => result?,
            () = crate::server::shutdown_signal() => {}
        }
        return stop(running, args).await;
    }
    crate::server::shutdown_signal().await;
    stop(running, args).await
}

async fn stop(running: crate::server::Running, args: &UpArgs) -> anyhow::Result<ExitCode> {
    running.stop(args.server.shutdown_timeout).await?;
    Ok(ExitCode::SUCCESS)
}

fn print_routes(running: &crate::server::Running, endpoint: &str) {
    let live = running.platform.live();
    if live.functions.is_empty() {
        return;
    }
    eprintln!("\nserving on {endpoint}:");
    for function in live.functions.values() {
        for trigger in &function.config.triggers {
            match trigger {
                updraft_model::Trigger::Http(http) => {
                    eprintln!("  {:<10} {endpoint}{}  -> {}", http.methods.to_string(), http.route, function.name);
                }
                updraft_model::Trigger::Webhook(hook) => {
                    let methods = hook.methods.to_string();
                    eprintln!("  {methods:<10} {endpoint}{}  -> {} (webhook, 202)", hook.route, function.name);
                }
                updraft_model::Trigger::Topic(topic) => {
                    eprintln!("  {:<10} {}  -> {}", "topic", topic.topic, function.name);
                }
                updraft_model::Trigger::Email(email) => {
                    eprintln!("  {:<10} {}  -> {}", "email", email.address, function.name);
                }
                updraft_model::Trigger::Queue(queue) => {
                    eprintln!("  {:<10} {}  -> {}", "queue", queue.queue, function.name);
                }
                updraft_model::Trigger::Schedule(schedule) => {
                    let zone = schedule.timezone.name();
                    eprintln!("  {:<10} {} ({zone})  -> {}", "schedule", schedule.schedule, function.name);
                }
            }
        }
    }
    eprintln!("\ndashboard: {endpoint}/ui/ (sign in with the key in the data dir's admin-token)");
    eprintln!();
}

/// Redeploys an app when a file under its folder changes, ignoring build output.
async fn watch(client: &Client, apps: &[PathBuf]) -> anyhow::Result<()> {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            for path in event.paths {
                let _ = sender.send(path);
            }
        }
    })
    .context("cannot watch files for changes; run with --no-watch")?;
    let apps: Vec<PathBuf> = apps.iter().map(|a| a.canonicalize().unwrap_or_else(|_| a.clone())).collect();
    for app in &apps {
        watcher.watch(app, RecursiveMode::Recursive).with_context(|| format!("watching {}", app.display()))?;
    }
    eprintln!("watching {} app(s) for changes; Ctrl-C to stop", apps.len());
    while let Some(path) = receiver.recv().await {
        if ignored(&path) {
            continue;
        }
        let mut changed: Vec<&PathBuf> = apps.iter().filter(|app| path.starts_with(app)).collect();
        // Let a burst of writes (an editor saving, a build) settle.
        let settle = tokio::time::sleep(Duration::from_millis(300));
        tokio::pin!(settle);
        loop {
            tokio::select! {
                () = &mut settle => break,
                next = receiver.recv() => match next {
                    Some(next) if !ignored(&next) => {
                        changed.extend(apps.iter().filter(|app| next.starts_with(app)));
                    }
                    Some(_) => {}
                    None => return Ok(()),
                },
            }
        }
        changed.sort();
        changed.dedup();
        for app in changed {
            eprintln!("change in {}; redeploying", app.display());
            if let Err(error) = deploy_dir(client, app, Output::Human).await {
                eprintln!("error: redeploying {}: {error:#}", app.display());
            }
        }
        // Building writes files too; drop what the build itself caused.
        while receiver.try_recv().is_ok() {}
    }
    Ok(())
}

fn ignored(path: &Path) -> bool {
    path.components().any(|c| matches!(c.as_os_str().to_str(), Some("target" | ".git" | "node_modules" | ".updraft")))
        || path.extension().is_some_and(|e| e == "swp" || e == "tmp")
}
