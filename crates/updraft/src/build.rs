//! `updraft build`, and the first half of `updraft deploy`: each function's bundle, made
//! from its source, its `build` command and its dependencies.
//!
//! What a build makes stays in `.updraft/` beside the manifest, never in the source
//! folders (so `updraft up` does not see its own build as a change): each function's
//! bundle and a `state.json` of what it was made from in `build/NAME/`, installed
//! packages in `deps/`. A step whose inputs are unchanged is skipped:
//!
//! - a `build` command, when its folder holds the same files as right after it last ran
//!   (`target` and `node_modules` aside) and its output is the one it made;
//! - a function folder's dependencies (`requirements.txt`: pip; `package.json`: npm),
//!   when a folder of packages installed from the same files by the same interpreter
//!   is there (functions listing the same share it);
//! - the zip, when its files are.
//!
//! What no function of the manifest uses any more is removed after each build.
//!
//! Bundles are reproducible: the same files make the same zip, byte for byte, so an
//! unchanged function uploads nothing and deploys nothing.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use updraft_model::{ArtifactDigest, FunctionSpec, Manifest};

use crate::output::Output;
use crate::package::{Layer, fingerprint, zip_layers};

/// The folder (beside the manifest) that builds write to, one folder per function.
pub const BUILD_DIR: &str = ".updraft/build";
/// The folder of installed packages, one folder per set, shared by functions.
const DEPS_DIR: &str = ".updraft/deps";

/// Folders a `build` command's inputs leave out: build outputs and installed packages,
/// which the command itself writes.
const NOT_BUILD_INPUTS: &[&str] = &["target", "node_modules"];

/// One function's bundle, ready to upload.
pub struct Bundle {
    pub name: String,
    pub bytes: Vec<u8>,
    pub digest: ArtifactDigest,
    /// Where the bundle is: the function's `source` file, or the zip in the build folder.
    pub path: PathBuf,
    /// What the build did, in order: a step that ran, or one skipped as unchanged.
    pub steps: Vec<Step>,
    /// The folders of installed packages in the bundle.
    packages: Vec<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `command`, `pip`, `npm` or `zip`.
    pub step: &'static str,
    /// True when the step was skipped because its inputs had not changed.
    pub cached: bool,
}

/// What the last build of a function was made from (`state.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The `build` command's inputs, and its output, right after it last ran.
    #[serde(default)]
    command: Option<CommandState>,
    /// The key of the files in `bundle.zip`.
    #[serde(default)]
    bundle: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct CommandState {
    inputs: String,
    output: String,
}

/// How a build reports its progress.
#[derive(Clone, Copy)]
pub struct Reporter {
    /// Lines for a person (else nothing but errors).
    human: bool,
    /// Spinners on a terminal, a step's output shown only if it fails.
    bars: bool,
}

impl Reporter {
    pub fn new(output: Output) -> Self {
        let human = output == Output::Human;
        Self { human, bars: human && std::io::stderr().is_terminal() }
    }

    fn say(&self, line: std::fmt::Arguments<'_>) {
        if self.human {
            eprintln!("{line}");
        }
    }
}

/// Builds every function of the app in `dir`, in the manifest's order; `fresh` runs
/// every step again, whatever the last build left.
pub fn build_app(
    dir: &Path,
    manifest: &Manifest,
    file: &str,
    fresh: bool,
    reporter: Reporter,
) -> anyhow::Result<Vec<Bundle>> {
    // Absolute, since steps run in other folders than this process's.
    let dir = &std::path::absolute(dir).with_context(|| format!("finding {}", dir.display()))?;
    let _lock = lock(dir, reporter)?;
    let mut bundles = Vec::new();
    for (name, spec) in &manifest.functions {
        let bundle = build_function(dir, name.as_str(), spec, fresh, reporter)
            .with_context(|| format!("building function {name:?} failed; fix it or its entry in {file}"))?;
        bundles.push(bundle);
    }
    let used: Vec<PathBuf> = bundles.iter().flat_map(|bundle| bundle.packages.iter().cloned()).collect();
    prune(dir, &used, manifest)?;
    Ok(bundles)
}

fn build_function(
    dir: &Path,
    name: &str,
    spec: &FunctionSpec,
    fresh: bool,
    reporter: Reporter,
) -> anyhow::Result<Bundle> {
    let out = dir.join(BUILD_DIR).join(name);
    let state_path = out.join("state.json");
    // A missing or unreadable state only means building everything again. A fresh
    // build forgets the last one's at once, so that if it fails, the next build cannot
    // take the older output as current.
    if fresh && state_path.exists() {
        std::fs::remove_file(&state_path).with_context(|| format!("removing {}", state_path.display()))?;
    }
    let mut state: State =
        std::fs::read(&state_path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default();
    let source = dir.join(&spec.source);
    let mut steps = Vec::new();

    if let Some(build) = &spec.build {
        let workdir = dir.join(build.workdir.as_deref().unwrap_or("."));
        if !workdir.is_dir() {
            bail!("the build workdir {} does not exist", workdir.display());
        }
        let inputs = || -> anyhow::Result<String> {
            Ok(key(&[b"command", build.command.as_bytes(), fingerprint(&workdir, NOT_BUILD_INPUTS)?.as_bytes()]))
        };
        let output = || if source.exists() { fingerprint(&source, &[]).ok() } else { None };
        let unchanged = match (&state.command, output()) {
            (Some(last), Some(output)) => last.output == output && last.inputs == inputs()?,
            _ => false,
        };
        if unchanged {
            reporter.say(format_args!("{name}: build unchanged since it last ran (`{}`)", build.command));
        } else {
            // Forgotten first: a command that fails half-way runs again next time,
            // whatever it left.
            if state.command.take().is_some() {
                save(&state_path, &state)?;
            }
            // The user's own build command, run as the user, like `make` would.
            #[allow(clippy::disallowed_methods)]
            let mut command = std::process::Command::new("sh");
            command.arg("-c").arg(&build.command).current_dir(&workdir);
            run(name, &build.command, &workdir, command, reporter)?;
            let output = output().with_context(|| {
                format!("`{}` ran but did not make the function's source {}", build.command, source.display())
            })?;
            state.command = Some(CommandState { inputs: inputs()?, output });
            save(&state_path, &state)?;
        }
        steps.push(Step { step: "command", cached: unchanged });
    }

    if !source.is_dir() {
        let bytes = std::fs::read(&source).with_context(|| {
            format!("cannot read the function's source {}; build it first or fix `source`", source.display())
        })?;
        let digest = ArtifactDigest::of(&bytes);
        return Ok(Bundle { name: name.to_owned(), bytes, digest, path: source, steps, packages: Vec::new() });
    }

    // A folder: its dependencies, unless a build command makes the bundle its own way.
    let mut python = None;
    let mut node = None;
    let mut packages = Vec::new();
    if spec.build.is_none() {
        let requirements = source.join("requirements.txt");
        if requirements.is_file() {
            let key = key(&[b"pip", &std::fs::read(&requirements)?, version("python3")?.as_bytes()]);
            let install = |target: &Path| {
                #[allow(clippy::disallowed_methods)] // pip, as the user would run it
                let mut pip = std::process::Command::new("python3");
                pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"])
                    .args(["--no-warn-script-location", "--root-user-action=ignore", "--target"])
                    .arg(target)
                    .arg("-r")
                    .arg(&requirements)
                    .current_dir(&source);
                run(name, "pip install -r requirements.txt", &source, pip, reporter)
            };
            let (target, cached) = dependencies(dir, "pip", &key, fresh, install)?;
            if cached {
                reporter.say(format_args!("{name}: requirements.txt unchanged; its packages are installed"));
            }
            steps.push(Step { step: "pip", cached });
            python = Some((target.clone(), key));
            packages.push(target);
        }
        let package = source.join("package.json");
        if package.is_file() {
            let lock = source.join("package-lock.json");
            let lock = lock.is_file().then_some(lock);
            let lock_bytes = match &lock {
                Some(lock) => std::fs::read(lock)?,
                None => Vec::new(),
            };
            let key = key(&[b"npm", &std::fs::read(&package)?, &lock_bytes, version("node")?.as_bytes()]);
            let install = |target: &Path| {
                std::fs::copy(&package, target.join("package.json"))?;
                if let Some(lock) = &lock {
                    std::fs::copy(lock, target.join("package-lock.json"))?;
                }
                // `npm ci` installs exactly what the lock file says; without one, npm
                // resolves the ranges afresh (and the bundle is only as reproducible as
                // the registry is still).
                let verb = if lock.is_some() { "ci" } else { "install" };
                #[allow(clippy::disallowed_methods)] // npm, as the user would run it
                let mut npm = std::process::Command::new("npm");
                npm.args([verb, "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(target);
                run(name, &format!("npm {verb} --omit=dev"), &source, npm, reporter)
            };
            let (target, cached) = dependencies(dir, "npm", &key, fresh, install)?;
            if cached {
                reporter.say(format_args!("{name}: package.json unchanged; its packages are installed"));
            }
            steps.push(Step { step: "npm", cached });
            node = Some((target.join("node_modules"), key));
            packages.push(target);
        }
    }

    // The dependencies first, the function's own files over them.
    let mut layers = Vec::new();
    let mut bundle_key = vec![b"zip".to_vec()];
    if let Some((root, key)) = &python {
        layers.push(Layer::whole(root));
        bundle_key.push(key.clone().into_bytes());
    }
    if let Some((root, key)) = &node {
        layers.push(Layer { root, prefix: "node_modules", skip: &[] });
        bundle_key.push(key.clone().into_bytes());
    }
    let own_skip: &[&str] = if node.is_some() { &["node_modules"] } else { &[] };
    layers.push(Layer { root: &source, prefix: "", skip: own_skip });
    bundle_key.push(fingerprint(&source, own_skip)?.into_bytes());
    let bundle_key = key(&bundle_key.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let path = out.join("bundle.zip");
    let cached = state.bundle.as_deref() == Some(bundle_key.as_str());
    let bytes = match cached.then(|| std::fs::read(&path).ok()).flatten() {
        Some(bytes) => bytes,
        None => {
            let bytes =
                zip_layers(&layers).with_context(|| format!("cannot package the folder {}", source.display()))?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
            state.bundle = Some(bundle_key);
            save(&state_path, &state)?;
            bytes
        }
    };
    steps.push(Step { step: "zip", cached });
    let digest = ArtifactDigest::of(&bytes);
    Ok(Bundle { name: name.to_owned(), bytes, digest, path, steps, packages })
}

/// The folder of the packages with `key`, installed by `install` unless they already
/// are (then `true`): `.updraft/deps/TOOL-KEY`, shared by every function that lists the
/// same ones. A step installs into a `.partial` folder renamed only once it succeeded,
/// so a folder that exists is complete.
fn dependencies(
    dir: &Path,
    tool: &str,
    key: &str,
    fresh: bool,
    install: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<(PathBuf, bool)> {
    let target = dir.join(DEPS_DIR).join(format!("{tool}-{}", &key[..32]));
    if target.is_dir() && !fresh {
        return Ok((target, true));
    }
    let partial = target.with_extension("partial");
    fresh_dir(&partial)?;
    install(&partial)?;
    if target.exists() {
        std::fs::remove_dir_all(&target).with_context(|| format!("removing {}", target.display()))?;
    }
    std::fs::rename(&partial, &target).with_context(|| format!("moving packages to {}", target.display()))?;
    Ok((target, false))
}

/// Removes what the last builds left that no function of the manifest uses any more:
/// packages no function lists, and the build folders of functions since removed.
fn prune(dir: &Path, used: &[PathBuf], manifest: &Manifest) -> anyhow::Result<()> {
    let stale = |folder: &Path, keep: &dyn Fn(&Path) -> bool| -> anyhow::Result<()> {
        let Ok(entries) = std::fs::read_dir(folder) else { return Ok(()) };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !keep(&path) {
                std::fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
        Ok(())
    };
    stale(&dir.join(DEPS_DIR), &|path| used.iter().any(|used| used == path))?;
    stale(&dir.join(BUILD_DIR), &|path| {
        let name = path.file_name().and_then(|name| name.to_str());
        name.is_some_and(|name| manifest.functions.keys().any(|function| function.as_str() == name))
    })
}

/// Holds `.updraft/build.lock` while this process builds the app, so that two builds of
/// it (`up` redeploying while a deploy runs by hand) take turns instead of writing the
/// same folders at once. The kernel releases the lock with the process.
fn lock(dir: &Path, reporter: Reporter) -> anyhow::Result<std::fs::File> {
    let folder = dir.join(".updraft");
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    let path = folder.join("build.lock");
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            reporter.say(format_args!("waiting for another build of {} to finish", dir.display()));
            file.lock().with_context(|| format!("locking {}", path.display()))?;
        }
        Err(std::fs::TryLockError::Error(error)) => {
            return Err(error).with_context(|| format!("locking {}", path.display()));
        }
    }
    Ok(file)
}

/// A digest of several parts, each length-prefixed so that no two lists collide.
fn key(parts: &[&[u8]]) -> String {
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// `program --version`: installed packages depend on the interpreter they were made for.
fn version(program: &str) -> anyhow::Result<String> {
    #[allow(clippy::disallowed_methods)] // the user's own interpreter, asked its version
    let output = std::process::Command::new(program)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run `{program} --version`; install {program} to build this function"))?;
    anyhow::ensure!(output.status.success(), "`{program} --version` exited with {}", output.status);
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Empties (or makes) a folder a step installs into.
fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

fn save(path: &Path, state: &State) -> anyhow::Result<()> {
    let dir = path.parent().expect("the state file is in a folder");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let temporary = path.with_extension("json.partial");
    std::fs::write(&temporary, serde_json::to_vec_pretty(state)?)
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))
}

/// Runs one step: under a spinner on a terminal (its output kept, and shown only if it
/// fails), else with a line saying what runs and its output passed through to stderr.
fn run(
    name: &str,
    what: &str,
    workdir: &Path,
    mut command: std::process::Command,
    reporter: Reporter,
) -> anyhow::Result<()> {
    if !reporter.bars {
        reporter.say(format_args!("building {name}: {what} (in {})", workdir.display()));
        if reporter.human {
            // The step's output goes where the user looks, stdout being the results'.
            command.stdout(std::io::stderr());
        } else {
            command.stdout(std::process::Stdio::null());
        }
        let status = command.status().with_context(|| format!("could not run `{what}`"))?;
        if !status.success() {
            bail!("`{what}` exited with {status}");
        }
        return Ok(());
    }
    let spinner = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template("{spinner} building {prefix}: {msg} ({elapsed})")
            .expect("a valid template"),
    );
    spinner.set_prefix(name.to_owned());
    spinner.set_message(what.to_owned());
    spinner.enable_steady_tick(Duration::from_millis(100));
    let started = Instant::now();
    let output = match command.output() {
        Ok(output) => output,
        Err(error) => {
            spinner.abandon();
            return Err(error).with_context(|| format!("could not run `{what}`"));
        }
    };
    if !output.status.success() {
        spinner.abandon_with_message(format!("{what} failed"));
        eprint!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        bail!("`{what}` exited with {}", output.status);
    }
    spinner.finish_with_message(format!("{what}: done in {:.1}s", started.elapsed().as_secs_f64()));
    Ok(())
}

/// `updraft build`: builds the app in `dir` and prints each function's bundle.
pub fn print(dir: &Path, fresh: bool, output: Output) -> anyhow::Result<()> {
    let app = crate::deploy::read_app(dir)?;
    let bundles = build_app(&app.dir, &app.manifest, &app.file, fresh, Reporter::new(output))?;
    match output {
        Output::Json => {
            let views: Vec<serde_json::Value> = bundles
                .iter()
                .map(|bundle| {
                    serde_json::json!({
                        "name": bundle.name,
                        "bundle": bundle.path,
                        "size": bundle.bytes.len(),
                        "digest": bundle.digest.to_string(),
                        "steps": bundle.steps,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&views)?);
        }
        Output::Human => {
            let dir = std::path::absolute(dir)?;
            let shown = |bundle: &Bundle| bundle.path.strip_prefix(&dir).unwrap_or(&bundle.path).display().to_string();
            let width = bundles.iter().map(|bundle| shown(bundle).len()).max().unwrap_or(0).max("BUNDLE".len());
            println!("{:<24} {:<width$}  {:>9}  {:<19}  STEPS", "FUNCTION", "BUNDLE", "SIZE", "DIGEST");
            for bundle in &bundles {
                let steps: Vec<String> = bundle
                    .steps
                    .iter()
                    .map(|step| if step.cached { format!("{} (cached)", step.step) } else { step.step.to_owned() })
                    .collect();
                println!(
                    "{:<24} {:<width$}  {:>9}  {:<19}  {}",
                    bundle.name,
                    shown(bundle),
                    crate::deploy::size(bundle.bytes.len()),
                    crate::deploy::short(&bundle.digest),
                    if steps.is_empty() { "-".to_owned() } else { steps.join(", ") },
                );
            }
        }
    }
    Ok(())
}
