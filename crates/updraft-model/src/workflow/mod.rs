//! Workflows: Amazon States Language state machines declared in the manifest
//! (`[workflows.NAME] definition = '''{ ...ASL JSON... }'''`), parsed and checked
//! here, and stepped one state at a time by pure functions the platform drives.

mod asl;
mod machine;
mod path;

pub use asl::{StateKind, StateMachine};
pub use machine::{AfterTask, Step, TaskError};
pub use path::{JsonPath, apply_template};

#[cfg(test)]
pub(crate) use machine::wildcard as matches_wildcard;
