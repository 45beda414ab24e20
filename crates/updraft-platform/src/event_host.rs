//! The platform as the event layer's host: the live functions and their topics, the
//! scheduler that runs them, the record writer, and webhooks' secrets.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use updraft_events::{AsyncEventMetric, Host, Ran};
use updraft_model::{FunctionConfig, FunctionName, TopicName, WebhookTrigger};
use updraft_runtime::{Input, InvokeContext};

use crate::invoke::InvokeFailure;
use crate::platform::Platform;

/// How long an outcome waits for its invocation's record to be stored (the record
/// writer retries a failing database for about this long).
const RECORD_WAIT: Duration = Duration::from_secs(60);

impl Host for Platform {
    fn function(&self, function: &FunctionName) -> Option<Arc<FunctionConfig>> {
        self.live().functions.get(function).map(|live| live.config.clone())
    }

    fn functions(&self) -> Vec<(FunctionName, Arc<FunctionConfig>)> {
        self.live().functions.values().map(|live| (live.name.clone(), live.config.clone())).collect()
    }

    fn subscribers(&self, topic: &TopicName) -> Vec<FunctionName> {
        let live = self.live();
        live.topics.get(topic).map(|functions| functions.iter().map(|f| f.name.clone()).collect()).unwrap_or_default()
    }

    fn invoke(
        &self,
        function: &FunctionName,
        qualifier: Option<&str>,
        input: Input,
        context: InvokeContext,
    ) -> BoxFuture<'_, Ran> {
        let function = function.clone();
        let qualifier = qualifier.map(str::to_owned);
        Box::pin(async move {
            let invoked = match qualifier {
                None => self.invoke_by_name(&function, input, context).await,
                Some(qualifier) => match self.qualified_function(&function, Some(&qualifier)).await {
                    Ok(Some(version)) => self.invoke(&version, input, context).await,
                    Ok(None) if self.live_version(&function).is_none() => return Ran::NotDeployed,
                    Ok(None) => {
                        let message = format!(
                            "function {function} has no version or alias {qualifier}; create the alias \
                             (Lambda's CreateAlias, or `aliases` in the manifest) or stop naming it"
                        );
                        return Ran::NotRun { message };
                    }
                    Err(error) => {
                        return Ran::NotRun {
                            message: format!("cannot load version {qualifier} of {function}: {error}"),
                        };
                    }
                },
            };
            match invoked {
                Ok(invocation) => match invocation.read_whole().await {
                    Ok(invocation) => Ran::Answered(invocation.response),
                    Err(error) => Ran::Failed(error),
                },
                Err(InvokeFailure::Throttled { throttle, .. }) => Ran::Throttled { reason: throttle.to_string() },
                Err(InvokeFailure::NotFound { .. }) => Ran::NotDeployed,
                Err(InvokeFailure::Function { error, .. }) => Ran::Failed(error),
            }
        })
    }

    fn record_stored(&self, request_id: &str) -> BoxFuture<'static, bool> {
        let waiter = self.recorder().durable(request_id);
        Box::pin(waiter.stored(RECORD_WAIT))
    }

    fn webhook_secret(&self, function: &FunctionName, webhook: &WebhookTrigger) -> Option<String> {
        let live = self.live().functions.get(function).cloned()?;
        Platform::webhook_secret(self, &live, webhook)
    }

    fn count(&self, function: &FunctionName, what: AsyncEventMetric) {
        self.metrics.async_event(function.as_str(), what);
    }
}
