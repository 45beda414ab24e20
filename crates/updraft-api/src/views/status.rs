//! The view of the server and its sandbox layers.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The server and how it can run functions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusView {
    /// The server's version.
    pub version: String,
    pub node_id: String,
    /// Whether wasmtime's pooling allocator is in use.
    pub pooling: bool,
    /// Where asynchronous events wait: `database` or `jetstream`.
    pub event_queue: String,
    /// The Lambda runtime's sandbox on this host; absent when the server runs no
    /// Lambda functions.
    pub sandbox: Option<SandboxView>,
}

/// The process sandbox's layers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SandboxView {
    /// Whether Lambda functions run here (no layer is missing without the operator's
    /// leave).
    pub ready: bool,
    pub layers: Vec<SandboxLayerView>,
}

/// One layer of the process sandbox.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SandboxLayerView {
    /// `namespaces`, `cgroup-memory`, `cgroup-pids`, `cgroup-cpu`, `landlock`,
    /// `seccomp` or `no-new-privs`.
    pub layer: String,
    /// `ok`, `missing` (Lambda functions do not run) or `allowed-missing` (they run
    /// without it, as the operator allowed with `--sandbox-allow-missing`).
    pub state: String,
    /// What is in place, or why it is not.
    pub detail: String,
    /// How to get the layer, when it is not in place.
    pub fix: Option<String>,
}

impl SandboxView {
    pub(crate) fn new(status: &updraft_platform::SandboxStatus) -> Self {
        use updraft_platform::LayerState;
        SandboxView {
            ready: status.check().is_ok(),
            layers: status
                .layers
                .iter()
                .map(|layer| SandboxLayerView {
                    layer: layer.layer.as_str().to_owned(),
                    state: layer.state.as_str().to_owned(),
                    detail: layer.detail.clone(),
                    fix: (layer.state != LayerState::Ok).then(|| layer.layer.fix().to_owned()),
                })
                .collect(),
        }
    }
}
