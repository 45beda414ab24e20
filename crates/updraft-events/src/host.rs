//! The seam between the event layer and the platform that runs functions: what the
//! event layer asks of it. The platform implements [`Host`]; the event layer never
//! sees its scheduler, its live state or its stores of keys and secrets.

use std::sync::Arc;

use futures::future::BoxFuture;
use updraft_model::{FunctionConfig, FunctionName, TopicName, WebhookTrigger};
use updraft_runtime::{HttpResponse, Input, InvokeContext, InvokeError};
pub use updraft_telemetry::AsyncEventMetric;

/// What the event layer needs from the platform.
pub trait Host: Send + Sync + 'static {
    /// The live configuration of `function`; `None` when it is not deployed.
    fn function(&self, function: &FunctionName) -> Option<Arc<FunctionConfig>>;

    /// Every live function with its configuration.
    fn functions(&self) -> Vec<(FunctionName, Arc<FunctionConfig>)>;

    /// The live functions subscribed to `topic`.
    fn subscribers(&self, topic: &TopicName) -> Vec<FunctionName>;

    /// Runs one invocation of the live `function`, or of the version `qualifier` names
    /// (a number, or an alias: a trigger or an `Event` invocation may name one).
    fn invoke(
        &self,
        function: &FunctionName,
        qualifier: Option<&str>,
        input: Input,
        context: InvokeContext,
    ) -> BoxFuture<'_, Ran>;

    /// Starts waiting for the record of invocation `request_id` to be stored; call it
    /// before the invocation starts. The future answers whether it was stored within
    /// the record writer's patience.
    fn record_stored(&self, request_id: &str) -> BoxFuture<'static, bool>;

    /// The secret that signs requests to `webhook` of `function`, if it is set.
    fn webhook_secret(&self, function: &FunctionName, webhook: &WebhookTrigger) -> Option<String>;

    /// Counts what happened to `function`'s asynchronous events (Lambda's async metrics).
    fn count(&self, function: &FunctionName, what: AsyncEventMetric);
}

/// How an invocation the event layer asked for ended.
#[derive(Debug)]
pub enum Ran {
    /// The function answered (a status other than 2xx is the function's failure).
    Answered(HttpResponse),
    /// A concurrency limit was reached: the function never saw the input.
    Throttled {
        /// Which limit, in a line.
        reason: String,
    },
    /// The function is not deployed (any more).
    NotDeployed,
    /// The function never saw the input: the version or alias asked for does not exist
    /// (yet), or could not be loaded. Nothing was recorded.
    NotRun {
        /// What to fix, in a line.
        message: String,
    },
    /// The invocation failed.
    Failed(InvokeError),
}
