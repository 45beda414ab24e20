//! The way out for a Lambda function granted hosts (`allowed_outbound_hosts`, and the
//! server's API for `publishes`/`starts` grants): exactly the listed hosts and ports.
//!
//! The instance keeps its own network namespace with only a loopback interface: no
//! route leads anywhere. Inside it the jailer opens a listener on `0.0.0.0:PORT` for
//! each admitted port and hands it to the host, which sees, for each connection, the
//! address it was made to. A name the function may reach has a loopback address of
//! its own (`127.100.x.y`, in the instance's `/etc/hosts`; names under a wildcard get
//! one from the instance's DNS server, answered here); an address listed as such is
//! reached at that address (added to the loopback interface when it is not a
//! loopback address). On each connection the host decides from that address and the
//! port alone, resolves names itself, refuses loopback and link-local answers for
//! names (so a name cannot be pointed at the host's own services), connects, and
//! copies both ways: TLS stays end to end. Anything else finds no listener, no route
//! or no name. TCP only.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use updraft_model::{HostMatch, HostRule, Portless, WEB_PORTS};

use crate::spec::EgressSpec;

/// The first address handed to a name (`/etc/hosts` or DNS); each gets its own.
const FIRST_NAME_ADDRESS: u32 = u32::from_be_bytes([127, 100, 0, 1]);
/// How many names one instance may have addresses for.
const MAX_NAMES: u32 = 65_000;
/// Outbound connections open at once per instance; more are refused (each holds two
/// of the server's descriptors).
const MAX_CONNECTIONS: usize = 256;
/// How long a connection to an allowed host may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The TTL of the DNS answers the instance gets (the host resolves on each connection).
const DNS_TTL: u32 = 60;

/// Why a function's hosts cannot be reached from a process sandbox.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EgressError {
    #[error(
        "allowed_outbound_hosts entry {entry:?}: IPv6 addresses are not supported for Lambda functions; name the host, or list its IPv4 address"
    )]
    Ipv6 { entry: String },
    #[error("allowed_outbound_hosts entry {entry:?} is not a host, `host:port`, `*.domain` or `*`")]
    Malformed { entry: String },
    #[error(
        "allowed_outbound_hosts entry {entry:?}: port {port} is the Lambda Runtime API's inside the instance; the function cannot reach another host on it"
    )]
    ReservedPort { entry: String, port: u16 },
}

/// What a function's entries admit, and the sandbox they need.
#[derive(Debug)]
pub struct EgressPlan {
    rules: Vec<HostRule>,
    /// The jailer's part: listeners, `/etc/hosts`, addresses, DNS.
    spec: EgressSpec,
    /// Names listed exactly, by their address in the instance.
    names: HashMap<Ipv4Addr, String>,
}

impl EgressPlan {
    /// The plan for `allowed` (validated manifest entries); `None` when the list is
    /// empty (no network). `reserved_port` is the Runtime API's.
    pub fn new(allowed: &[String], reserved_port: u16) -> Result<Option<EgressPlan>, EgressError> {
        if allowed.is_empty() {
            return Ok(None);
        }
        let mut rules = Vec::new();
        let mut spec = EgressSpec::default();
        let mut names = HashMap::new();
        let mut next = FIRST_NAME_ADDRESS;
        for entry in allowed {
            let mut rule = HostRule::parse(entry).ok_or_else(|| EgressError::Malformed { entry: entry.clone() })?;
            // `localhost` is the loopback address, in the instance as on the host.
            if rule.host == HostMatch::Name("localhost".into()) {
                rule.host = HostMatch::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
            }
            let ports: Vec<u16> = rule.port.map_or_else(|| WEB_PORTS.to_vec(), |port| vec![port]);
            if let Some(&port) = ports.iter().find(|port| **port == reserved_port) {
                return Err(EgressError::ReservedPort { entry: entry.clone(), port });
            }
            spec.ports.extend(ports);
            match &rule.host {
                HostMatch::Any | HostMatch::Subdomains(_) => spec.dns = true,
                HostMatch::Name(name) => {
                    if !names.values().any(|known| known == name) {
                        let address = Ipv4Addr::from(next);
                        next += 1;
                        names.insert(address, name.clone());
                        spec.hosts.push((name.clone(), address));
                    }
                }
                HostMatch::Ip(IpAddr::V4(address)) => {
                    if !address.is_loopback() && !spec.local_addresses.contains(address) {
                        spec.local_addresses.push(*address);
                    }
                }
                HostMatch::Ip(IpAddr::V6(_)) => return Err(EgressError::Ipv6 { entry: entry.clone() }),
            }
            rules.push(rule);
        }
        spec.ports.sort_unstable();
        spec.ports.dedup();
        Ok(Some(EgressPlan { rules, spec, names }))
    }

    /// What the jailer sets up for this plan.
    pub fn spec(&self) -> &EgressSpec {
        &self.spec
    }

    fn allows_name(&self, name: &str, port: u16) -> bool {
        self.rules
            .iter()
            .any(|rule| !matches!(rule.host, HostMatch::Ip(_)) && rule.allows(name, port, Portless::WebPorts))
    }

    fn allows_address(&self, address: Ipv4Addr, port: u16) -> bool {
        self.rules.iter().any(|rule| {
            rule.host == HostMatch::Ip(IpAddr::V4(address))
                && rule.allows(&address.to_string(), port, Portless::WebPorts)
        })
    }

    /// Whether a name may be looked up at all (any port).
    fn knows_name(&self, name: &str) -> bool {
        self.rules.iter().any(|rule| !matches!(rule.host, HostMatch::Ip(_)) && rule.allows_host(name))
    }
}

/// One instance's egress, served while it lives: dropping it stops every listener
/// and the DNS server. Open connections end when the instance's side closes, which
/// its end does at the latest.
pub struct Egress {
    _tasks: JoinSet<()>,
}

/// Names the instance looked up under a wildcard, with the addresses it was given.
#[derive(Default)]
struct Resolved {
    by_address: HashMap<Ipv4Addr, String>,
    by_name: HashMap<String, Ipv4Addr>,
    next: u32,
}

struct State {
    plan: Arc<EgressPlan>,
    resolved: Mutex<Resolved>,
    connections: Arc<Semaphore>,
    function: String,
}

impl Egress {
    /// Serves `plan` on the sockets the jailer opened for it. Must be called within a
    /// Tokio runtime.
    pub fn serve(
        plan: Arc<EgressPlan>,
        function: &str,
        dns: Option<std::net::UdpSocket>,
        listeners: Vec<(u16, std::net::TcpListener)>,
    ) -> std::io::Result<Egress> {
        let first_dynamic = FIRST_NAME_ADDRESS + plan.names.len() as u32;
        let state = Arc::new(State {
            plan,
            resolved: Mutex::new(Resolved { next: first_dynamic, ..Resolved::default() }),
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            function: function.to_owned(),
        });
        let mut tasks = JoinSet::new();
        if let Some(dns) = dns {
            let dns = UdpSocket::from_std(dns)?;
            tasks.spawn(answer_dns(state.clone(), dns));
        }
        for (port, listener) in listeners {
            let listener = TcpListener::from_std(listener)?;
            tasks.spawn(accept(state.clone(), port, listener));
        }
        Ok(Egress { _tasks: tasks })
    }
}

async fn accept(state: Arc<State>, port: u16, listener: TcpListener) {
    loop {
        let Ok((inside, _)) = listener.accept().await else {
            // The namespace is gone (or out of descriptors); nothing more will come.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = state.connections.clone().try_acquire_owned() else {
            tracing::debug!(function = %state.function, "egress: too many open connections; one refused");
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _permit = permit;
            forward(&state, inside, port).await;
        });
    }
}

/// Connects one accepted connection to where its address says, if the plan admits it.
async fn forward(state: &State, mut inside: TcpStream, port: u16) {
    let Ok(SocketAddr::V4(local)) = inside.local_addr() else { return };
    let Some(mut outside) = connect(state, *local.ip(), port).await else { return };
    let _ = inside.set_nodelay(true);
    let _ = outside.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
}

/// The connection a request to `address:port` inside the instance stands for, or
/// `None` when nothing admits it.
async fn connect(state: &State, address: Ipv4Addr, port: u16) -> Option<TcpStream> {
    let plan = &state.plan;
    let name = plan
        .names
        .get(&address)
        .cloned()
        .or_else(|| state.resolved.lock().unwrap_or_else(|p| p.into_inner()).by_address.get(&address).cloned());
    let targets: Vec<SocketAddr> = match name {
        Some(name) => {
            if !plan.allows_name(&name, port) {
                tracing::debug!(function = %state.function, %name, port, "egress: port not allowed for this host");
                return None;
            }
            let resolved = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((name.as_str(), port)))
                .await
                .ok()?
                .ok()?;
            // A name must not lead back into the host: its loopback services, or the
            // link-local metadata addresses of clouds.
            resolved.filter(|target| reachable_by_name(target.ip())).collect()
        }
        None if plan.allows_address(address, port) => vec![SocketAddr::new(IpAddr::V4(address), port)],
        None => {
            tracing::debug!(function = %state.function, %address, port, "egress: address not allowed");
            return None;
        }
    };
    for target in targets {
        if let Ok(Ok(stream)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            return Some(stream);
        }
    }
    None
}

/// Whether a name may resolve to `address`: not loopback, link-local, unspecified,
/// multicast or broadcast (IPv4-mapped IPv6 judged as IPv4).
fn reachable_by_name(address: IpAddr) -> bool {
    let address = match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match address {
        IpAddr::V4(v4) => {
            !(v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast())
        }
        IpAddr::V6(v6) => !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || v6.is_unicast_link_local()),
    }
}

/// The instance's DNS server: names the plan admits get an address of their own
/// (`A`); `AAAA` gets no answer, so clients use IPv4; every other name is `NXDOMAIN`.
async fn answer_dns(state: Arc<State>, socket: UdpSocket) {
    let mut buffer = [0u8; 512];
    loop {
        let Ok((length, peer)) = socket.recv_from(&mut buffer).await else { continue };
        let Some(answer) = dns_answer(&state, &buffer[..length]) else { continue };
        let _ = socket.send_to(&answer, peer).await;
    }
}

fn dns_answer(state: &State, query: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    if query.message_type() != MessageType::Query {
        return None;
    }
    let mut answer = Message::new();
    answer
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    let Some(question) = query.queries().first() else {
        answer.set_response_code(ResponseCode::FormErr);
        return answer.to_vec().ok();
    };
    answer.add_query(question.clone());
    let name = question.name().to_lowercase().to_ascii();
    let name = name.trim_end_matches('.');
    if !state.plan.knows_name(name) {
        answer.set_response_code(ResponseCode::NXDomain);
        return answer.to_vec().ok();
    }
    if question.query_type() == RecordType::A {
        match address_for(state, name) {
            Some(address) => {
                answer.add_answer(Record::from_rdata(question.name().clone(), DNS_TTL, RData::A(A(address))));
            }
            None => {
                answer.set_response_code(ResponseCode::ServFail);
            }
        }
    }
    answer.to_vec().ok()
}

/// The address `name` has in the instance: a listed name's, or one handed out now.
fn address_for(state: &State, name: &str) -> Option<Ipv4Addr> {
    if let Some((address, _)) = state.plan.names.iter().find(|(_, listed)| listed.as_str() == name) {
        return Some(*address);
    }
    let mut resolved = state.resolved.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(address) = resolved.by_name.get(name) {
        return Some(*address);
    }
    if resolved.next >= FIRST_NAME_ADDRESS + MAX_NAMES {
        return None;
    }
    let address = Ipv4Addr::from(resolved.next);
    resolved.next += 1;
    resolved.by_name.insert(name.to_owned(), address);
    resolved.by_address.insert(address, name.to_owned());
    Some(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(entries: &[&str]) -> EgressPlan {
        let entries: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
        EgressPlan::new(&entries, 9001).unwrap().unwrap()
    }

    #[test]
    fn a_plan_listens_on_the_admitted_ports_and_names_each_host() {
        let plan = plan(&["api.example.com", "*.internal.net:5432", "127.0.0.1:8080", "10.1.2.3:6379", "localhost:9"]);
        assert_eq!(plan.spec.ports, [9, 80, 443, 5432, 6379, 8080]);
        assert_eq!(plan.spec.hosts, [("api.example.com".to_owned(), Ipv4Addr::new(127, 100, 0, 1))]);
        assert_eq!(plan.spec.local_addresses, [Ipv4Addr::new(10, 1, 2, 3)]);
        assert!(plan.spec.dns);
        assert!(plan.allows_name("api.example.com", 443));
        assert!(!plan.allows_name("api.example.com", 5432));
        assert!(plan.allows_name("db.internal.net", 5432));
        assert!(!plan.allows_name("db.internal.net", 443));
        assert!(plan.allows_address(Ipv4Addr::LOCALHOST, 8080));
        assert!(plan.allows_address(Ipv4Addr::LOCALHOST, 9), "localhost is the loopback address");
        assert!(!plan.allows_address(Ipv4Addr::LOCALHOST, 5432));
        assert!(!plan.allows_name("127.0.0.1", 8080), "an address is not a name");
    }

    #[test]
    fn plans_refuse_what_a_sandbox_cannot_reach() {
        let error = EgressPlan::new(&["[::1]:80".to_owned()], 9001).unwrap_err();
        assert!(matches!(error, EgressError::Ipv6 { .. }), "{error}");
        let error = EgressPlan::new(&["127.0.0.1:9001".to_owned()], 9001).unwrap_err();
        assert!(error.to_string().contains("Runtime API"), "{error}");
        assert!(EgressPlan::new(&[], 9001).unwrap().is_none());
    }

    #[test]
    fn names_never_lead_back_to_the_host() {
        for blocked in ["127.0.0.1", "169.254.169.254", "0.0.0.0", "::1", "::ffff:127.0.0.1", "fe80::1", "224.0.0.1"] {
            assert!(!reachable_by_name(blocked.parse().unwrap()), "{blocked}");
        }
        for allowed in ["93.184.216.34", "10.0.0.5", "2606:2800:220:1::1"] {
            assert!(reachable_by_name(allowed.parse().unwrap()), "{allowed}");
        }
    }

    #[test]
    fn the_dns_server_answers_admitted_names_only() {
        let state = State {
            plan: Arc::new(plan(&["*.internal.net", "api.example.com"])),
            resolved: Mutex::new(Resolved { next: FIRST_NAME_ADDRESS + 1, ..Resolved::default() }),
            connections: Arc::new(Semaphore::new(1)),
            function: "f".into(),
        };
        let ask = |name: &str, kind: RecordType| {
            let mut query = Message::new();
            query
                .set_id(7)
                .add_query(hickory_proto::op::Query::query(hickory_proto::rr::Name::from_ascii(name).unwrap(), kind));
            Message::from_vec(&dns_answer(&state, &query.to_vec().unwrap()).unwrap()).unwrap()
        };
        let first = ask("db.internal.net.", RecordType::A);
        assert_eq!(first.id(), 7);
        let address = match first.answers()[0].data() {
            RData::A(A(address)) => *address,
            other => panic!("{other:?}"),
        };
        assert_eq!(address, Ipv4Addr::new(127, 100, 0, 2));
        let again = ask("DB.internal.net.", RecordType::A);
        assert_eq!(again.answers()[0].data(), &RData::A(A(address)), "a name keeps its address");
        let listed = ask("api.example.com.", RecordType::A);
        assert_eq!(listed.answers()[0].data(), &RData::A(A(Ipv4Addr::new(127, 100, 0, 1))));
        assert!(ask("db.internal.net.", RecordType::AAAA).answers().is_empty());
        assert_eq!(ask("evil.example.org.", RecordType::A).response_code(), ResponseCode::NXDomain);
        assert_eq!(ask("internal.net.", RecordType::A).response_code(), ResponseCode::NXDomain);
    }
}
