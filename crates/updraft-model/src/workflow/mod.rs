//! Workflows: Amazon States Language state machines declared in the manifest (or a
//! SAM template's `AWS::Serverless::StateMachine`)
//! (`[workflows.NAME] definition = '''{ ...ASL JSON... }'''`), parsed and checked
//! here, and stepped one state at a time by pure functions the platform drives.

mod asl;
mod intrinsics;
mod machine;
mod path;

pub use asl::{StateKind, StateMachine, TaskTarget};
pub use machine::{AfterTask, Step, TaskError};
pub use path::{JsonPath, TemplateError, apply_template};

#[cfg(test)]
pub(crate) use machine::wildcard as matches_wildcard;
