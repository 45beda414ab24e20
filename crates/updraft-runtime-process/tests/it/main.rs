//! The process runtime end to end: real jailed interpreters, real Runtime API.
//!
//! These tests need root (or unprivileged user namespaces), control groups and
//! Landlock, as the server does; each hostile test first checks that the sandbox is
//! in place, so that a sandbox failing open cannot harm the host.

mod conformance;
mod egress;
mod harness;
mod hostile;
mod lambda;
mod layers;
mod server;
mod warm;
