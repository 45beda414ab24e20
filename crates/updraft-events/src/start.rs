//! Starting the event layer's loops once its host exists.

use std::sync::{Arc, Weak};

use crate::definitions::Workflow;
use crate::host::Host;
use crate::layer::EventLayer;
use crate::queue::QueueError;
use crate::{dispatch, schedules, takeover, work_queues};

impl EventLayer {
    /// Starts delivering for `host` with `workflows` deployed: releases what this
    /// node's previous run held, starts the dispatcher, the ticker and the poller, and
    /// resumes the workflow executions the previous run left running. Everything runs
    /// until [`EventLayer::stop`].
    pub async fn start(
        self: &Arc<Self>,
        host: Weak<dyn Host>,
        workflows: Vec<Arc<Workflow>>,
    ) -> Result<(), QueueError> {
        self.set_host(host);
        self.workflows_set(workflows);
        dispatch::start(self).await?;
        schedules::start(self);
        work_queues::start(self);
        self.resume_workflows().await?;
        takeover::start(self);
        Ok(())
    }
}
