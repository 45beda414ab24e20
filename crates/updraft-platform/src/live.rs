//! What serves traffic right now: the live version of every function, with its
//! scheduler pool, and the routes to them, swapped whole on every change.

use std::collections::BTreeMap;
use std::sync::Arc;

use updraft_model::{AppName, FunctionConfig, FunctionName, Trigger, VersionNumber};
use updraft_runtime_wasm::{HttpRequest, HttpResponse};
use updraft_scheduler::Pool;

use crate::routes::{RouteConflict, RouteTable};

/// A function version ready to invoke.
pub struct LiveFunction {
    pub name: FunctionName,
    pub app: AppName,
    pub version: VersionNumber,
    pub fingerprint: String,
    pub config: FunctionConfig,
    /// The version's instances in the scheduler.
    pub pool: Arc<Pool<HttpRequest, HttpResponse>>,
}

/// The live functions and the route table built from them.
pub struct LiveState {
    pub functions: BTreeMap<FunctionName, Arc<LiveFunction>>,
    pub routes: RouteTable<Arc<LiveFunction>>,
}

impl LiveState {
    pub fn empty() -> Self {
        Self { functions: BTreeMap::new(), routes: RouteTable::empty() }
    }

    /// Builds the state for these functions, failing if two of their routes collide.
    pub fn build(functions: BTreeMap<FunctionName, Arc<LiveFunction>>) -> Result<Self, RouteConflict> {
        let triggers = functions.values().flat_map(|function| {
            function.config.triggers.iter().map(move |trigger| match trigger {
                Trigger::Http(http) => (&function.name, http, function.clone()),
            })
        });
        let routes = RouteTable::build(triggers)?;
        Ok(Self { functions, routes })
    }

    /// Checks that functions with these configurations could be live together.
    pub fn check_routes<'a>(
        functions: impl IntoIterator<Item = (&'a FunctionName, &'a FunctionConfig)>,
    ) -> Result<(), RouteConflict> {
        let triggers = functions.into_iter().flat_map(|(name, config)| {
            config.triggers.iter().map(move |trigger| match trigger {
                Trigger::Http(http) => (name, http, ()),
            })
        });
        RouteTable::build(triggers).map(drop)
    }
}
