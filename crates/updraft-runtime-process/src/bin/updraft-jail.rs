//! The jailer on its own, for the runtime's tests and for hosts that keep it apart
//! from the server binary: `updraft-jail '<sandbox spec as JSON>'`.

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(spec), None) = (args.next(), args.next()) else {
        eprintln!("usage: updraft-jail SPEC_JSON (started by the Updraft server, not by hand)");
        std::process::exit(2);
    };
    updraft_runtime_process::jail::main(&spec)
}
