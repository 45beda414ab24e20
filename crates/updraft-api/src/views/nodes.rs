//! The view of the cluster's nodes.

use serde::{Deserialize, Serialize};
use updraft_platform::NodeInfo;
use utoipa::ToSchema;

/// A member of the cluster.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    pub id: String,
    /// Where other nodes and clients reach it.
    pub address: String,
    /// Updraft's version on it.
    pub version: String,
    /// `alive`, `dead` (silent past the dead-after time) or `left` (stopped cleanly).
    pub state: String,
    /// Whether this is the node that answered.
    pub this_node: bool,
    /// Milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// Milliseconds since the Unix epoch.
    pub last_heartbeat_ms: i64,
    /// Milliseconds since its last heartbeat, by the database's clock.
    pub silent_for_ms: u64,
    /// Invocations running on it.
    pub in_flight: u64,
    /// Instances alive on it.
    pub instances: u64,
    /// The functions those instances serve.
    pub warm_functions: Vec<String>,
}

/// The cluster's nodes, by id.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeListView {
    pub nodes: Vec<NodeView>,
    /// How long a node may be silent before it is dead.
    pub dead_after_ms: u64,
}

impl NodeView {
    pub(crate) fn new(node: &NodeInfo) -> Self {
        Self {
            id: node.id.clone(),
            address: node.address.clone(),
            version: node.version.clone(),
            state: node.state.as_str().to_owned(),
            this_node: node.this,
            started_at_ms: node.started_at,
            last_heartbeat_ms: node.last_heartbeat,
            silent_for_ms: node.silent_for.as_millis() as u64,
            in_flight: node.in_flight,
            instances: node.instances,
            warm_functions: node.warm_functions.iter().map(ToString::to_string).collect(),
        }
    }
}
