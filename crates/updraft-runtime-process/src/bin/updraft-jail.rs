//! The jailer on its own, for the runtime's tests and for hosts that keep it apart
//! from the server binary. It takes no arguments: the server writes the sandbox spec
//! to its stdin, a Unix socket (see `updraft_runtime_process::spec`).

fn main() {
    if std::env::args_os().len() > 1 {
        eprintln!("usage: updraft-jail (started by the Updraft server, which sends the spec on stdin)");
        std::process::exit(2);
    }
    updraft_runtime_process::jail::main()
}
