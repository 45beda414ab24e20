//! Taking over the work of nodes that died, or stopped and did not come back: once a
//! node has been silent past the dead-after time (or has left), the events it held
//! leased are made due at once for whichever node claims them first, and its running
//! workflow executions move to this node, which resumes each from its last stored step.
//! Every live node looks; the database hands each execution to one of them.
//!
//! Schedules need no takeover (any node may tick, and a tick's guarded update lets it
//! fire once), nor do work-queue messages (a receipt's visibility timeout returns a
//! message whose node died) or events kept in NATS JetStream (the stream redelivers
//! what a dead node held once its ack wait runs out).

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;

use crate::layer::EventLayer;
use crate::queue::QueueError;

pub(crate) fn start(layer: &Arc<EventLayer>) {
    tokio::spawn(run(Arc::downgrade(layer), layer.stopping()));
}

async fn run(layer: Weak<EventLayer>, mut stopped: watch::Receiver<bool>) {
    loop {
        let Some(every) = layer.upgrade().map(|layer| look_every(layer.dead_after())) else { return };
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        let Some(layer) = layer.upgrade() else { return };
        if let Err(error) = take_over(&layer).await {
            tracing::warn!(error = %error, "looking for dead nodes' work failed; trying again");
        }
    }
}

/// How often to look: a fraction of the dead-after time, so a dead node's work moves
/// within about that time.
fn look_every(dead_after: Duration) -> Duration {
    (dead_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(2))
}

async fn take_over(layer: &Arc<EventLayer>) -> Result<(), QueueError> {
    let dead_after = i64::try_from(layer.dead_after().as_millis()).unwrap_or(i64::MAX);
    let nodes = layer.store().node_list().await?;
    let gone = nodes
        .iter()
        .filter(|node| node.id != layer.node_id())
        .filter(|node| node.left_at.is_some() || node.silent_for > dead_after);
    for node in gone {
        let released = layer.event_queue().recover(&node.id).await?;
        let executions = layer.store().execution_takeover(&node.id, layer.node_id()).await?;
        if released > 0 || !executions.is_empty() {
            tracing::info!(
                node = %node.id,
                events = released,
                executions = executions.len(),
                "took over a dead node's work"
            );
        }
        for execution in executions {
            layer.resume(execution);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_looked_at_often_enough_to_move_work_within_the_dead_after_time() {
        assert_eq!(look_every(Duration::from_secs(10)), Duration::from_secs(2));
        assert_eq!(look_every(Duration::from_secs(2)), Duration::from_millis(500));
        assert_eq!(look_every(Duration::from_millis(100)), Duration::from_millis(100));
    }
}
