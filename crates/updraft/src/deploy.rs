//! `updraft deploy`: build each function, upload what the server lacks, deploy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use updraft_api::params::DeployParams;
use updraft_api::views::DeployView;
use updraft_model::{ArtifactDigest, Limits, Manifest};

use crate::client::Client;
use crate::output::Output;

/// The manifest file in `dir`.
pub fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("updraft.toml")
}

/// Builds, uploads and deploys the app in `dir`.
pub async fn deploy_dir(client: &Client, dir: &Path, output: Output) -> anyhow::Result<DeployView> {
    let path = manifest_path(dir);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("cannot read {}; run this in a folder with an updraft.toml, or pass the folder", path.display())
    })?;
    let file = path.display().to_string();
    // Checked here too so mistakes show before a long build; the server checks again.
    let manifest = Manifest::parse(&text, &file, &Limits::default())?;
    let human = output == Output::Human;

    let mut artifacts = BTreeMap::new();
    for (name, spec) in &manifest.functions {
        if let Some(build) = &spec.build {
            let workdir = dir.join(build.workdir.as_deref().unwrap_or("."));
            if human {
                eprintln!("building {name}: {} (in {})", build.command, workdir.display());
            }
            run_build(&build.command, &workdir, human).with_context(|| {
                format!("building function {name:?} failed; fix the build or the `build` command in {file}")
            })?;
        }
        let source = dir.join(&spec.source);
        let bytes = if source.is_dir() {
            // A Lambda function's folder goes up as one zip, as Lambda takes it.
            crate::package::zip_dir(&source)
                .with_context(|| format!("function {name:?}: cannot package the folder {}", source.display()))?
        } else {
            std::fs::read(&source).with_context(|| {
                format!(
                    "function {name:?}: cannot read its source {}; build it first or fix `source` in {file}",
                    source.display()
                )
            })?
        };
        let digest = ArtifactDigest::of(&bytes);
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
            if human {
                eprintln!("{name}: uploading {} ({})", short(&digest), size(bytes.len()));
            }
            client
                .send(
                    client
                        .request(reqwest::Method::PUT, &format!("/v1/artifacts/{}", digest.as_str()))
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(bytes),
                )
                .await
                .with_context(|| format!("uploading the artifact of {name:?}"))?;
        }
        artifacts.insert(name.to_string(), digest.to_string());
    }

    if human {
        eprintln!("deploying app {} to {}", manifest.app, client.endpoint());
    }
    let params = DeployParams { manifest: text, artifacts };
    let view: DeployView = client.post_json(&format!("/v1/apps/{}/deploy", manifest.app), &params).await?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&view)?),
        Output::Human => {
            for function in &view.functions {
                let state = if function.changed { "deployed" } else { "unchanged" };
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

fn run_build(command: &str, workdir: &Path, show: bool) -> anyhow::Result<()> {
    if !workdir.is_dir() {
        bail!("the build workdir {} does not exist", workdir.display());
    }
    // The user's own build command, run as the user, like `make` would.
    #[allow(clippy::disallowed_methods)]
    let mut child = std::process::Command::new("sh");
    child.arg("-c").arg(command).current_dir(workdir);
    if !show {
        child.stdout(std::process::Stdio::null());
    }
    let status = child.status().with_context(|| format!("could not run `{command}`"))?;
    if !status.success() {
        bail!("`{command}` exited with {status}");
    }
    Ok(())
}

fn short(digest: &ArtifactDigest) -> String {
    format!("sha256:{}", &digest.as_str()[..12])
}

fn size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}
