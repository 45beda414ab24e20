//! What serves traffic right now: the live version of every function, with its
//! scheduler pool, and the routes to them, swapped whole on every change.

use std::collections::BTreeMap;
use std::sync::Arc;

use updraft_model::{
    AppName, FunctionConfig, FunctionName, HttpTrigger, TopicName, Trigger, VersionNumber, WebhookTrigger,
};
use updraft_runtime::{FunctionResponse, Input};
use updraft_scheduler::Pool;

use crate::routes::{RouteConflict, RouteTable};

/// A function version ready to invoke.
pub struct LiveFunction {
    pub name: FunctionName,
    pub app: AppName,
    pub version: VersionNumber,
    pub fingerprint: String,
    pub config: Arc<FunctionConfig>,
    /// What the function's tokens are signed over (see `access::TokenSigner`).
    pub token: updraft_store::TokenIdentity,
    /// The version's instances in the scheduler.
    pub pool: Arc<Pool<Input, FunctionResponse>>,
}

/// What a route leads to: a function, called at once (an `http` trigger) or later
/// with the request stored first (a `webhook` trigger).
#[derive(Clone)]
pub struct RouteTarget {
    pub function: Arc<LiveFunction>,
    pub webhook: Option<Arc<WebhookTrigger>>,
    /// The alias whose version serves the route, if the trigger names one.
    pub alias: Option<updraft_model::AliasName>,
    /// The API Gateway events a Lambda handler gets from the route.
    pub payload_format: updraft_model::PayloadFormat,
}

/// The live functions, the route table and the topic subscriptions built from them.
pub struct LiveState {
    pub functions: BTreeMap<FunctionName, Arc<LiveFunction>>,
    pub routes: RouteTable<RouteTarget>,
    /// Each topic's subscribers, by function name.
    pub topics: BTreeMap<TopicName, Vec<Arc<LiveFunction>>>,
}

impl LiveState {
    pub fn empty() -> Self {
        Self { functions: BTreeMap::new(), routes: RouteTable::empty(), topics: BTreeMap::new() }
    }

    /// Builds the state for these functions, failing if two of their routes collide.
    pub fn build(functions: BTreeMap<FunctionName, Arc<LiveFunction>>) -> Result<Self, RouteConflict> {
        let claims = functions.values().flat_map(|function| {
            function.config.triggers.iter().filter_map(move |trigger| {
                let (claim, webhook) = route_claim(trigger)?;
                let (alias, payload_format) = (claim.alias.clone(), claim.payload_format);
                let webhook = webhook.map(Arc::new);
                let target = RouteTarget { function: function.clone(), webhook, alias, payload_format };
                Some((&function.name, claim, target))
            })
        });
        let claims: Vec<_> = claims.collect();
        let routes = RouteTable::build(claims.iter().map(|(name, claim, target)| (*name, claim, target.clone())))?;
        let mut topics: BTreeMap<TopicName, Vec<Arc<LiveFunction>>> = BTreeMap::new();
        for function in functions.values() {
            for trigger in &function.config.triggers {
                if let Trigger::Topic(topic) = trigger {
                    let subscribers = topics.entry(topic.topic.clone()).or_default();
                    if !subscribers.iter().any(|subscriber| subscriber.name == function.name) {
                        subscribers.push(function.clone());
                    }
                }
            }
        }
        Ok(Self { functions, routes, topics })
    }

    /// Checks that functions with these configurations could be live together.
    pub fn check_routes<'a>(
        functions: impl IntoIterator<Item = (&'a FunctionName, &'a FunctionConfig)>,
    ) -> Result<(), RouteConflict> {
        let claims: Vec<_> = functions
            .into_iter()
            .flat_map(|(name, config)| {
                config.triggers.iter().filter_map(move |trigger| route_claim(trigger).map(|(claim, _)| (name, claim)))
            })
            .collect();
        RouteTable::build(claims.iter().map(|(name, claim)| (*name, claim, ()))).map(drop)
    }
}

/// The route a trigger claims, if it is routed (`http`, `webhook`).
fn route_claim(trigger: &Trigger) -> Option<(HttpTrigger, Option<WebhookTrigger>)> {
    match trigger {
        Trigger::Http(http) => Some((http.clone(), None)),
        Trigger::Webhook(webhook) => Some((webhook.as_route(), Some(webhook.clone()))),
        Trigger::Topic(_) | Trigger::Schedule(_) | Trigger::Queue(_) | Trigger::Email(_) => None,
    }
}
