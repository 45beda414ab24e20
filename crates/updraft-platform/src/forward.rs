//! Where a function's synchronous requests run in a cluster: on its home node, chosen by
//! rendezvous hashing of the function's name over the live nodes, so its requests meet
//! warm instances instead of starting cold ones on every node. The API forwards a
//! request to the home over HTTP with a signed `x-updraft-forwarded` header (the
//! sending node's id, the request id, an expiry and an HMAC under the key every node
//! shares), so the home keeps the request id and trusts the caller's authentication;
//! a forwarded request is never forwarded again. A home that cannot be reached is
//! suspected for a while and the next node in rendezvous order takes its place; one
//! that is overloaded refuses, and the sending node runs the request itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use updraft_model::{FunctionName, now_millis};

use crate::Platform;

/// The header that carries a forward's proof.
pub const FORWARDED_HEADER: &str = "x-updraft-forwarded";

/// How long a forward stays valid (against replays of a captured one).
const FORWARD_VALID_MS: i64 = 60_000;

/// How long a node that could not be reached is passed over.
const SUSPECT_FOR: Duration = Duration::from_secs(5);

/// Where a request should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Home {
    /// On this node.
    Here,
    /// On another node, reached at `address`.
    Node { id: String, address: String },
}

/// A live node as this one last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peer {
    pub(crate) id: String,
    pub(crate) address: String,
}

/// Nodes this one could not reach lately, with when.
#[derive(Default)]
pub(crate) struct Suspects(Mutex<HashMap<String, Instant>>);

impl Suspects {
    /// The nodes still suspected now.
    fn current(&self) -> Vec<String> {
        let mut suspects = self.0.lock().unwrap_or_else(|p| p.into_inner());
        suspects.retain(|_, since| since.elapsed() < SUSPECT_FOR);
        suspects.keys().cloned().collect()
    }
}

/// The rendezvous score of `node` for `function`: the highest wins. A digest, so every
/// node (of any build) ranks alike.
fn score(function: &str, node: &str) -> u64 {
    let digest =
        Sha256::new().chain_update(function.as_bytes()).chain_update([0]).chain_update(node.as_bytes()).finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("a sha256 has 32 bytes"))
}

impl Platform {
    /// The node `function`'s synchronous requests go to.
    pub fn home(&self, function: &FunctionName) -> Home {
        let peers = self.peers.load();
        // Alone (always, on SQLite), every request runs here: nothing to hash.
        if peers.len() <= 1 {
            return Home::Here;
        }
        let me = self.node_id();
        let suspects = self.suspects.current();
        let best = peers
            .iter()
            .filter(|peer| peer.id == me || !suspects.contains(&peer.id))
            .max_by_key(|peer| score(function.as_str(), &peer.id));
        match best {
            Some(peer) if peer.id != me => Home::Node { id: peer.id.clone(), address: peer.address.clone() },
            _ => Home::Here,
        }
    }

    /// Passes over node `id` for a while: a forward to it failed to connect.
    pub fn suspect(&self, id: &str) {
        tracing::warn!(node = id, "a home node could not be reached; its requests run elsewhere for a while");
        self.suspects.0.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_owned(), Instant::now());
    }

    /// The `x-updraft-forwarded` value for request `request_id` sent from this node.
    pub fn forward_proof(&self, request_id: &str) -> String {
        let expires = (now_millis() + FORWARD_VALID_MS).to_string();
        let mac = self.tokens.sign(&[b"forward", self.node_id().as_bytes(), request_id.as_bytes(), expires.as_bytes()]);
        format!("{};{request_id};{expires};{}", self.node_id(), hex::encode(mac))
    }

    /// The request id a genuine, unexpired forward carries; `None` for anything else.
    pub fn forwarded_request_id(&self, proof: &str) -> Option<String> {
        let mut parts = proof.split(';');
        let (from, request_id, expires, mac) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || expires.parse::<i64>().ok()? < now_millis() {
            return None;
        }
        let mac = hex::decode(mac).ok()?;
        let parts: [&[u8]; 4] = [b"forward", from.as_bytes(), request_id.as_bytes(), expires.as_bytes()];
        self.tokens.verify_signed(&parts, &mac).then(|| request_id.to_owned())
    }

    /// Whether this node should refuse forwarded work: as many invocations run as it
    /// may have instances.
    pub fn overloaded(&self) -> bool {
        self.scheduler.in_flight() >= u64::from(self.config.max_instances)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losing_a_node_moves_only_the_functions_it_was_home_to() {
        let nodes = ["a", "b", "c", "d"];
        let home = |function: &str, nodes: &[&str]| -> String {
            nodes.iter().max_by_key(|node| score(function, node)).unwrap().to_string()
        };
        let functions: Vec<String> = (0..1000).map(|i| format!("function-{i}")).collect();
        let before: Vec<String> = functions.iter().map(|f| home(f, &nodes)).collect();
        // Spread: every node is home to some.
        for node in nodes {
            let count = before.iter().filter(|home| *home == node).count();
            assert!((150..350).contains(&count), "{node} is home to {count} of 1000");
        }
        let after: Vec<String> = functions.iter().map(|f| home(f, &["a", "b", "d"])).collect();
        for (before, after) in before.iter().zip(&after) {
            if before != "c" {
                assert_eq!(before, after, "a function whose home survived moved");
            } else {
                assert_ne!(after, "c");
            }
        }
    }
}
