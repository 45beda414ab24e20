//! `updraft`: the server and the CLI in one binary.

#![forbid(unsafe_code)]

mod build;
mod cli;
mod client;
mod deploy;
mod new;
mod output;
mod package;
mod sam;
mod samples;
mod server;
mod top;
mod up;

use std::process::ExitCode;

use clap::Parser;

/// The hidden first argument that turns this binary into the Lambda runtime's jailer
/// (see `updraft_runtime_process::jail`). It is checked before anything else runs, so
/// that the jailer starts single-threaded, as creating namespaces requires.
pub const JAIL_ARG: &str = "__jail";

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|arg| arg == JAIL_ARG) {
        if args.next().is_some() {
            eprintln!("error: {JAIL_ARG} is started by the Updraft server, which sends the sandbox spec on stdin");
            return ExitCode::FAILURE;
        }
        updraft_runtime_process::jail::main()
    }
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
