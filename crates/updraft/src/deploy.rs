//! `updraft deploy`: build each function, upload what the server lacks, deploy.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures::StreamExt;
use updraft_api::params::{CanaryParams, DeployParams};
use updraft_api::views::DeployView;
use updraft_model::{ArtifactDigest, Limits, Manifest};

use crate::client::Client;
use crate::output::Output;

/// The manifest file in `dir`.
pub fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("updraft.toml")
}

/// Whether `dir` holds an app: an `updraft.toml`, or a SAM template.
pub fn is_app(dir: &Path) -> bool {
    manifest_path(dir).is_file() || crate::sam::template_in(dir).is_some()
}

/// An app as read from its folder, checked here so that mistakes show before a long
/// build (the server checks again).
pub struct App {
    /// The folder its sources are relative to.
    pub dir: PathBuf,
    /// The manifest's text (made from the template for a SAM app).
    pub text: String,
    /// The file's path, for messages.
    pub file: String,
    pub manifest: Manifest,
    /// The canary a SAM template's `DeploymentPreference` asks for.
    pub canary: Option<CanaryParams>,
}

/// The app at `path`: a folder with an `updraft.toml`, or with a SAM `template.yaml`
/// (made a manifest as `updraft import` makes it), or a template file itself. An
/// `updraft.toml` wins over a template beside it.
pub fn read_app(path: &Path) -> anyhow::Result<App> {
    let (dir, template) = if path.is_file() {
        (
            path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned(),
            Some(path.to_owned()),
        )
    } else if manifest_path(path).is_file() {
        (path.to_owned(), None)
    } else {
        (path.to_owned(), crate::sam::template_in(path))
    };
    let Some(template) = template.filter(|template| template.extension().is_some_and(|e| e == "yaml" || e == "yml"))
    else {
        let manifest = manifest_path(&dir);
        let text = std::fs::read_to_string(&manifest).with_context(|| {
            format!(
                "cannot read {}; run this in a folder with an updraft.toml (or a SAM template.yaml), or pass the \
                 folder",
                manifest.display()
            )
        })?;
        let file = manifest.display().to_string();
        let manifest = Manifest::parse(&text, &file, &Limits::default())?;
        return Ok(App { dir, text, file, manifest, canary: None });
    };
    let file = template.display().to_string();
    let text = std::fs::read_to_string(&template).with_context(|| format!("cannot read {file}"))?;
    let converted = crate::sam::convert(&text, &file, &dir, &crate::sam::app_name_for(&dir))?;
    let manifest = Manifest::parse(&converted.manifest, &file, &Limits::default())?;
    let canary = converted.canary.map(|(percent, duration)| CanaryParams { percent, duration });
    Ok(App { dir, text: converted.manifest, file, manifest, canary })
}

/// Builds, uploads and deploys the app in `dir`.
pub async fn deploy_dir(client: &Client, dir: &Path, output: Output) -> anyhow::Result<DeployView> {
    deploy_dir_with(client, dir, None, output).await
}

/// Deploys the app in `dir`, as a canary when `canary` says so.
pub async fn deploy_dir_with(
    client: &Client,
    dir: &Path,
    canary: Option<CanaryParams>,
    output: Output,
) -> anyhow::Result<DeployView> {
    let App { dir, text, file, manifest, canary: asked } = read_app(dir)?;
    let dir = dir.as_path();
    // A template's DeploymentPreference, unless the command line says otherwise.
    let canary = canary.or(asked);
    let human = output == Output::Human;
    let reporter = crate::build::Reporter::new(output);
    // Spinners and bars on a terminal; plain lines elsewhere.
    let bars = human && std::io::stderr().is_terminal();

    let mut artifacts = BTreeMap::new();
    // Builds run processes for minutes at most; `up`'s server keeps serving meanwhile.
    let bundles = tokio::task::block_in_place(|| crate::build::build_app(dir, &manifest, &file, false, reporter))?;
    for bundle in bundles {
        let crate::build::Bundle { name, bytes, digest, .. } = bundle;
        let exists = client
            .request(reqwest::Method::HEAD, &format!("/v1/artifacts/{}", digest.as_str()))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if exists {
            if human {
                eprintln!("{name}: artifact {} already uploaded", short(&digest));
            }
        } else {
            let bar = if bars {
                Some(upload_bar(&format!("{name}: uploading {}", short(&digest)), bytes.len()))
            } else {
                if human {
                    eprintln!("{name}: uploading {} ({})", short(&digest), size(bytes.len()));
                }
                None
            };
            let length = bytes.len();
            let body = match &bar {
                Some(bar) => reqwest::Body::wrap_stream(chunks_ticking(bytes, bar.clone())),
                None => reqwest::Body::from(bytes),
            };
            client
                .send(
                    client
                        .request(reqwest::Method::PUT, &format!("/v1/artifacts/{}", digest.as_str()))
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .header(reqwest::header::CONTENT_LENGTH, length)
                        .body(body),
                )
                .await
                .with_context(|| format!("uploading the artifact of {name:?}"))?;
            if let Some(bar) = bar {
                bar.set_style(indicatif::ProgressStyle::with_template("{msg}").expect("a valid template"));
                bar.finish_with_message(format!("{name}: uploaded {} ({})", short(&digest), size(length)));
            }
        }
        artifacts.insert(name.to_string(), digest.to_string());
    }

    if human {
        eprintln!("deploying app {} to {}", manifest.app, client.endpoint());
    }
    let canary_note = canary.as_ref().map(|c| format!("canary: {}% for {}", c.percent, c.duration));
    let params = DeployParams { manifest: text, artifacts, canary };
    let view: DeployView = client.post_json(&format!("/v1/apps/{}/deploy", manifest.app), &params).await?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&view)?),
        Output::Human => {
            for function in &view.functions {
                let state = match (&canary_note, function.changed) {
                    (Some(note), true) => format!("deployed ({note})"),
                    (None, true) => "deployed".to_owned(),
                    (_, false) => "unchanged".to_owned(),
                };
                println!("{:<24} v{:<5} {state}", function.name, function.version);
            }
            for removed in &view.removed {
                println!("{removed:<24} {:<6} removed", "");
            }
            for warning in &view.warnings {
                eprintln!("warning: {warning}");
            }
        }
    }
    Ok(view)
}

/// A bar counting an upload's bytes.
fn upload_bar(message: &str, length: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(length as u64).with_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_owned());
    bar
}

/// `bytes` as a stream of chunks, each moving `bar` on as the client takes it.
fn chunks_ticking(
    bytes: Vec<u8>,
    bar: indicatif::ProgressBar,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    const CHUNK: usize = 64 * 1024;
    let bytes = bytes::Bytes::from(bytes);
    let chunks: Vec<bytes::Bytes> =
        (0..bytes.len()).step_by(CHUNK).map(|start| bytes.slice(start..(start + CHUNK).min(bytes.len()))).collect();
    futures::stream::iter(chunks).map(move |chunk| {
        bar.inc(chunk.len() as u64);
        Ok(chunk)
    })
}

pub fn short(digest: &ArtifactDigest) -> String {
    format!("sha256:{}", &digest.as_str()[..12])
}

pub fn size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}
