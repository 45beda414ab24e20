//! Which hosts a guest may call over HTTP (`allowed_outbound_hosts`).

use std::sync::Arc;

use updraft_model::{HostRule, Portless};
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

/// The hosts a function may reach. Empty means none: no ambient network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    rules: Arc<[HostRule]>,
}

impl OutboundPolicy {
    /// Entries are `host`, `host:port`, `*.domain` or `*` (any host name), as the
    /// manifest validates them; an entry without a port admits every port.
    pub fn new(allowed: &[String]) -> Self {
        Self { rules: allowed.iter().filter_map(|entry| HostRule::parse(entry)).collect() }
    }

    /// Whether a request to `host` on `port` is allowed.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.rules.iter().any(|rule| rule.allows(host, port, Portless::AnyPort))
    }
}

/// The wasi:http hooks of one invocation: refuses requests the policy does not allow,
/// and puts the invocation's trace context on those it sends.
pub(crate) struct OutboundHooks {
    pub(crate) policy: OutboundPolicy,
    /// The running invocation's `traceparent` (its own span), for outbound requests
    /// that do not carry one of their own.
    pub(crate) traceparent: Option<http::HeaderValue>,
    /// Its `tracestate`: the chain's lineage, so that a call back into the platform
    /// counts toward recursive loop detection.
    pub(crate) tracestate: Option<http::HeaderValue>,
}

const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        let uri = request.uri();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let allowed = uri.host().is_some_and(|host| self.policy.allows(host, port));
        if !allowed {
            tracing::debug!(uri = %uri, "outbound request denied by allowed_outbound_hosts");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        drop(fut);
        if let Some(traceparent) = &self.traceparent
            && !request.headers().contains_key(TRACEPARENT)
        {
            request.headers_mut().insert(TRACEPARENT, traceparent.clone());
        }
        // The chain's lineage goes on every call, added to a tracestate the guest set.
        let ours = self
            .tracestate
            .as_ref()
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').map(str::trim).find(|member| member.starts_with("updraft=")));
        if let Some(ours) = ours {
            let existing = request.headers().get(TRACESTATE).and_then(|value| value.to_str().ok());
            let merged = updraft_model::TraceParent::tracestate_with(ours, existing);
            if let Ok(value) = http::HeaderValue::from_str(&merged) {
                request.headers_mut().insert(TRACESTATE, value);
            }
        }
        let uri = request.uri().clone();
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = match wasmtime_wasi_http::default_send_request(request, options).await {
                Ok(sent) => sent,
                Err(error) => {
                    // The guest may see only a closed body stream; say what happened.
                    static FAILED: updraft_runtime::LogBudget =
                        updraft_runtime::LogBudget::new(20, std::time::Duration::from_secs(1));
                    if let Some(suppressed) = FAILED.admit() {
                        tracing::info!(%uri, %error, suppressed, "a function's outbound request failed");
                    }
                    return Err(error);
                }
            };
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_matches_hosts_ports_and_wildcards() {
        let policy = OutboundPolicy::new(&["api.example.com".into(), "*.internal.net".into(), "127.0.0.1:8080".into()]);
        assert!(policy.allows("api.example.com", 443));
        assert!(policy.allows("API.example.com", 80));
        assert!(!policy.allows("example.com", 443));
        assert!(policy.allows("db.internal.net", 5432));
        assert!(!policy.allows("internal.net", 80));
        assert!(policy.allows("127.0.0.1", 8080));
        assert!(!policy.allows("127.0.0.1", 8081));
        assert!(!OutboundPolicy::default().allows("anything", 80));
        assert!(OutboundPolicy::new(&["*".into()]).allows("anything", 80));
    }
}
