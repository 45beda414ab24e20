//! `updraft new TEMPLATE DIR`: a first function, ready to run, test and deploy. The
//! templates are files in `crates/updraft/templates/`, built into the binary; `{{name}}`
//! in them becomes the function's name, taken from DIR.

use std::path::Path;

use anyhow::Context as _;

/// A template: its name, what it makes, and its files (path, contents).
pub struct Template {
    pub name: &'static str,
    pub about: &'static str,
    files: &'static [(&'static str, &'static str)],
    /// For a wasm component built from its WIT: the wasi:http version to label the
    /// bundled WIT (in `wit/`) with.
    wit: Option<&'static str>,
}

macro_rules! files {
    ($template:literal: $($path:literal),+ $(,)?) => {
        &[$(($path, include_str!(concat!("../templates/", $template, "/", $path)))),+]
    };
}

/// The wasi:http WIT the templates bundle (`templates/wit/`, with its licence): the
/// version the host links.
const WIT: &[(&str, &str)] = files!(
    "wit": "world.wit",
    "LICENSE.md",
    "deps/cli.wit",
    "deps/clocks.wit",
    "deps/filesystem.wit",
    "deps/http.wit",
    "deps/io.wit",
    "deps/random.wit",
    "deps/sockets.wit",
);
const WIT_VERSION: &str = "0.2.12";
/// StarlingMonkey (inside componentize-js 0.23) exports wasi:http 0.2.10 and builds only
/// against a world of that name. The host links any 0.2.x guest, so the JavaScript
/// templates get the same WIT labelled 0.2.10.
const STARLINGMONKEY_WIT_VERSION: &str = "0.2.10";

pub const TEMPLATES: &[Template] = &[
    Template {
        name: "python-lambda",
        about: "an AWS Lambda handler in Python, on an HTTP route",
        files: files!(
            "python-lambda": "updraft.toml",
            ".gitignore", "README.md", "src/app.py"),
        wit: None,
    },
    Template {
        name: "node-lambda",
        about: "an AWS Lambda handler in Node.js (ES module), on an HTTP route",
        files: files!(
            "node-lambda": "updraft.toml",
            ".gitignore", "README.md", "src/index.mjs"),
        wit: None,
    },
    Template {
        name: "rust",
        about: "a wasm component in Rust (wstd), built with cargo for wasm32-wasip2",
        files: files!(
            "rust": "updraft.toml",
            ".gitignore", "README.md", "Cargo.toml", "src/main.rs"),
        wit: None,
    },
    Template {
        name: "python",
        about: "a wasm component in Python (componentize-py), with the wasi:http WIT it builds against",
        files: files!("python": "updraft.toml", ".gitignore", "README.md", "app.py"),
        wit: Some(WIT_VERSION),
    },
    Template {
        name: "javascript",
        about: "a wasm component in JavaScript (componentize-js, from npm), with the wasi:http WIT it builds against",
        files: files!("javascript": "updraft.toml", ".gitignore", "README.md", "app.js", "package.json"),
        wit: Some(STARLINGMONKEY_WIT_VERSION),
    },
    Template {
        name: "typescript",
        about: "a wasm component in TypeScript (tsc, then componentize-js), with the wasi:http WIT it builds against",
        files: files!(
            "typescript": "updraft.toml",
            ".gitignore",
            "README.md",
            "app.ts",
            "package.json",
            "tsconfig.json",
        ),
        wit: Some(STARLINGMONKEY_WIT_VERSION),
    },
    Template {
        name: "flask",
        about: "a Flask app under gunicorn (runtime = \"http\"), Flask installed from PyPI by its build step",
        files: files!(
            "flask": "updraft.toml",
            ".gitignore", "README.md", "app/app.py", "app/requirements.txt"),
        wit: None,
    },
    Template {
        name: "express",
        about: "an Express app (runtime = \"http\"), Express installed from npm by its build step",
        files: files!(
            "express": "updraft.toml",
            ".gitignore", "README.md", "app/server.js", "app/package.json"),
        wit: None,
    },
];

/// The templates, one per line, for `updraft new --list`.
pub fn list() -> String {
    let width = TEMPLATES.iter().map(|template| template.name.len()).max().unwrap_or(0);
    TEMPLATES.iter().map(|template| format!("{:<width$}  {}\n", template.name, template.about)).collect()
}

/// Writes `template` into `dir` (which must be empty or absent); returns the function's
/// name.
pub fn create(template: &str, dir: &Path) -> anyhow::Result<String> {
    let Some(template) = TEMPLATES.iter().find(|candidate| candidate.name == template) else {
        let names: Vec<&str> = TEMPLATES.iter().map(|template| template.name).collect();
        anyhow::bail!("there is no template {template:?}; the templates are {} (updraft new --list)", names.join(", "));
    };
    if dir.exists() {
        let empty = dir.read_dir().with_context(|| format!("reading {}", dir.display()))?.next().is_none();
        anyhow::ensure!(empty, "{} exists and is not empty; name a new folder", dir.display());
    }
    let name = function_name(dir);
    for (path, contents) in template.files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, contents.replace("{{name}}", &name))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(version) = template.wit {
        for (path, contents) in WIT {
            let path = dir.join("wit").join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            let contents = match path.extension() {
                Some(extension) if extension == "wit" => contents.replace(WIT_VERSION, version),
                _ => (*contents).to_owned(),
            };
            std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(name)
}

/// The function's name from the folder's: lowercase letters, digits and dashes.
fn function_name(dir: &Path) -> String {
    let base = dir.file_name().map(|name| name.to_string_lossy().to_lowercase()).unwrap_or_default();
    let mut name = String::new();
    for c in base.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    name.truncate(60);
    let name = name.trim_end_matches('-');
    if name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.to_owned()
    } else {
        format!("fn-{name}").trim_end_matches('-').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_folder() {
        assert_eq!(function_name(Path::new("/tmp/My App")), "my-app");
        assert_eq!(function_name(Path::new("hello_world")), "hello-world");
        assert_eq!(function_name(Path::new("2fast")), "fn-2fast");
        assert_eq!(function_name(Path::new("...")), "fn");
    }

    #[test]
    fn every_template_makes_a_valid_manifest_named_after_its_folder() {
        for template in TEMPLATES {
            let dir = tempfile::tempdir().unwrap();
            let app = dir.path().join("my-app");
            assert_eq!(create(template.name, &app).unwrap(), "my-app");
            let text = std::fs::read_to_string(app.join("updraft.toml")).unwrap();
            let manifest = updraft_model::Manifest::parse(&text, "updraft.toml", &updraft_model::Limits::default())
                .unwrap_or_else(|error| panic!("{}: {error}", template.name));
            assert_eq!(manifest.app.as_str(), "my-app");
            let readme = std::fs::read_to_string(app.join("README.md")).unwrap();
            assert!(readme.contains("updraft up .") && readme.contains("updraft deploy"), "{}", template.name);
            assert!(!readme.contains("{{name}}"), "{}", template.name);
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep"), "").unwrap();
        assert!(create("flask", dir.path()).unwrap_err().to_string().contains("is not empty"));
        assert!(
            create("cobol", &dir.path().join("x")).unwrap_err().to_string().contains("the templates are python-lambda")
        );
    }
}
