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

/// The manifest in `dir`: its text, its path for messages, and what it says. Checked
/// here so that mistakes show before a long build; the server checks again.
pub fn read_manifest(dir: &Path) -> anyhow::Result<(String, String, Manifest)> {
    let path = manifest_path(dir);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("cannot read {}; run this in a folder with an updraft.toml, or pass the folder", path.display())
    })?;
    let file = path.display().to_string();
    let manifest = Manifest::parse(&text, &file, &Limits::default())?;
    Ok((text, file, manifest))
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
    let (text, file, manifest) = read_manifest(dir)?;
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
