//! The deployed workflows: the state machines apps' manifests declare, as the event
//! layer starts executions of them.

use std::sync::Arc;

use serde_json::Value;
use updraft_model::{AppName, FunctionName, Manifest, StateMachine};

/// A deployed workflow.
#[derive(Debug)]
pub struct Workflow {
    pub name: FunctionName,
    pub app: AppName,
    pub machine: StateMachine,
    pub definition: Value,
}

impl Workflow {
    /// The workflows declared in `manifest`.
    pub fn declared(manifest: &Manifest) -> Vec<Arc<Workflow>> {
        manifest
            .workflows
            .iter()
            .map(|(name, spec)| {
                Arc::new(Workflow {
                    name: name.clone(),
                    app: manifest.app.clone(),
                    machine: spec.machine.clone(),
                    definition: spec.definition.clone(),
                })
            })
            .collect()
    }
}
