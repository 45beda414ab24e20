//! What a Lambda runtime's process is given: its environment (Lambda's variables and
//! the function's), its argument vector, and the sizes of its `/tmp`.

use updraft_model::RuntimeKind;
use updraft_runtime::InstanceConfig;

use crate::host::Interpreter;

/// What every runtime of `kind` gets, whatever its function.
pub(crate) fn base_environment(kind: RuntimeKind) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin/:/bin:/opt/bin".into()),
        ("LANG".into(), "en_US.UTF-8".into()),
        ("TZ".into(), ":UTC".into()),
        (
            "LD_LIBRARY_PATH".into(),
            "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib".into(),
        ),
        ("LAMBDA_TASK_ROOT".into(), "/var/task".into()),
        ("LAMBDA_RUNTIME_DIR".into(), "/var/runtime".into()),
        ("AWS_XRAY_CONTEXT_MISSING".into(), "LOG_ERROR".into()),
    ];
    match kind {
        RuntimeKind::Python3 => env.push(("AWS_EXECUTION_ENV".into(), "AWS_Lambda_python3".into())),
        RuntimeKind::Nodejs => {
            env.push(("AWS_EXECUTION_ENV".into(), "AWS_Lambda_nodejs".into()));
            env.push((
                "NODE_PATH".into(),
                "/opt/nodejs/node_modules:/var/runtime/node_modules:/var/task/node_modules".into(),
            ));
        }
        // Lambda sets no AWS_EXECUTION_ENV for custom runtimes.
        RuntimeKind::Provided | RuntimeKind::Wasm => {}
        RuntimeKind::Http => {
            // Where a build step installs a server's dependencies (`pip install
            // --target`, `npm ci`): importable, and their commands on the PATH.
            env[0].1 = "/var/task/bin:/var/task/node_modules/.bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin".into();
            env.extend([
                ("PORT".into(), updraft_model::ServerSpec::PORT.to_string()),
                ("PYTHONPATH".into(), "/var/task".into()),
                ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
                ("PYTHONUNBUFFERED".into(), "1".into()),
                ("HOME".into(), "/tmp".into()),
            ]);
        }
    }
    env
}

/// The command line of a managed runtime.
pub(crate) fn runtime_argv(kind: RuntimeKind, interpreter: &Interpreter) -> Vec<String> {
    let program = interpreter.program.to_string_lossy().into_owned();
    match kind {
        // -I: isolated (no user site, no PYTHON* variables, no cwd on the path);
        // -B: never try to write .pyc files into the read-only bundle.
        RuntimeKind::Python3 => vec![program, "-I".into(), "-B".into(), "/var/runtime/bootstrap.py".into()],
        _ => vec![program, "/var/runtime/bootstrap.mjs".into()],
    }
}

/// The memory limit of a pre-started sandbox until it is given a function (whose limit
/// it then takes): Lambda's largest classic size.
pub(crate) const TEMPLATE_MEMORY: u64 = 10 * 1024 * 1024 * 1024;

/// The largest private `/tmp` (Lambda's default ephemeral storage). It is a tmpfs, so
/// what it holds counts toward the instance's memory: it gets half the memory limit,
/// up to this, and a full `/tmp` fails with ENOSPC rather than running out of memory.
pub(crate) const MAX_TMP_BYTES: u64 = 512 * 1024 * 1024;

pub(crate) fn tmp_bytes(memory: u64) -> u64 {
    (memory / 2).min(MAX_TMP_BYTES)
}

pub(crate) fn env_value<'a>(config: &'a InstanceConfig, key: &str) -> Option<&'a str> {
    config.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

pub(crate) fn log_date() -> String {
    chrono::Utc::now().format("%Y/%m/%d").to_string()
}
