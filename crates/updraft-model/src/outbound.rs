//! `allowed_outbound_hosts` entries as rules: what each one admits, the same for every
//! runtime (wasm checks them per request in the host; process functions get an egress
//! path built from them).

use std::net::IpAddr;

/// One `allowed_outbound_hosts` entry: `"*"`, `"api.example.com"`, `"*.example.com"`,
/// `"10.0.0.5"` or any of them with `:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    pub host: HostMatch,
    /// `None`: the entry names no port.
    pub port: Option<u16>,
}

/// Which hosts a rule admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// `*`: any host name.
    Any,
    /// `*.example.com`: every name ending in `.example.com` (not `example.com` itself).
    Subdomains(String),
    /// One name, lower-cased.
    Name(String),
    /// One address, written as such.
    Ip(IpAddr),
}

impl HostRule {
    /// Parses an entry that the manifest has validated; `None` for one it would refuse.
    pub fn parse(entry: &str) -> Option<HostRule> {
        let entry = entry.trim().to_ascii_lowercase();
        if entry == "*" {
            return Some(HostRule { host: HostMatch::Any, port: None });
        }
        let (host, port) = split_port(&entry)?;
        let host = if let Some(domain) = host.strip_prefix("*.") {
            if domain.is_empty() || domain.contains('*') {
                return None;
            }
            HostMatch::Subdomains(domain.to_owned())
        } else if let Some(ip) = parse_ip(host) {
            HostMatch::Ip(ip)
        } else if host.is_empty() || host.contains(['*', '[', ']', ':']) {
            return None;
        } else {
            HostMatch::Name(host.trim_end_matches('.').to_owned())
        };
        Some(HostRule { host, port })
    }

    /// Whether the rule admits a request to `host` (a name or an address, any case) on
    /// `port`; `portless` says what an entry without a port admits.
    pub fn allows(&self, host: &str, port: u16, portless: Portless) -> bool {
        let port_ok = match self.port {
            Some(listed) => listed == port,
            None => portless.admits(port),
        };
        port_ok && self.allows_host(host)
    }

    /// Whether the rule admits `host`, whatever the port.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        match &self.host {
            // A wildcard is for names: an address must be listed as one.
            HostMatch::Any => ip.is_none(),
            HostMatch::Subdomains(domain) => {
                ip.is_none() && host.len() > domain.len() + 1 && host.ends_with(domain.as_str()) && {
                    let dot = host.len() - domain.len() - 1;
                    host.as_bytes()[dot] == b'.'
                }
            }
            HostMatch::Name(name) => ip.is_none() && host == *name,
            HostMatch::Ip(address) => ip == Some(*address),
        }
    }
}

/// What an entry without a port admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Portless {
    /// Every port: wasm functions, whose requests the host checks one by one.
    AnyPort,
    /// HTTP's and HTTPS's (80 and 443): process functions, whose egress listens on
    /// each port it admits.
    WebPorts,
}

/// The ports an entry without a port admits for process functions.
pub const WEB_PORTS: [u16; 2] = [80, 443];

impl Portless {
    fn admits(self, port: u16) -> bool {
        match self {
            Portless::AnyPort => true,
            Portless::WebPorts => WEB_PORTS.contains(&port),
        }
    }
}

/// An address as an entry writes it: IPv4, or IPv6 in brackets or bare.
fn parse_ip(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse().ok(),
    }
}

/// Splits `host[:port]`, minding brackets around an IPv6 address; `None` for a bad
/// port.
fn split_port(entry: &str) -> Option<(&str, Option<u16>)> {
    let split = if entry.starts_with('[') {
        entry.split_once("]:").map(|(host, port)| (&entry[..host.len() + 1], port))
    } else if entry.matches(':').count() == 1 {
        entry.split_once(':')
    } else {
        None
    };
    match split {
        Some((host, port)) => {
            let port = port.parse::<u16>().ok().filter(|port| *port > 0)?;
            Some((host, Some(port)))
        }
        None => Some((entry, None)),
    }
}

/// Checks one `allowed_outbound_hosts` entry: a host, optionally `*.` in front and a port
/// after, or `*` alone.
pub(crate) fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty; write a host like \"api.example.com\", or remove the entry".to_owned());
    }
    if let Some((scheme, rest)) = host.split_once("://") {
        let bare = rest.split('/').next().unwrap_or_default();
        return Err(format!("{host:?} has a scheme ({scheme}://); drop it and write only the host, like {bare:?}"));
    }
    if host.chars().any(char::is_whitespace) {
        return Err(format!("{host:?} contains a space; write only the host, like \"api.example.com\""));
    }
    if let Some((bare, _)) = host.split_once('/') {
        return Err(format!("{host:?} has a path; drop it and write only the host, like {bare:?}"));
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    if host != "*" && name.contains('*') {
        return Err(format!(
            "{host:?} has a '*' in the middle; use \"*\" alone for any host, or \"*.\" in front for subdomains, \
             like \"*.example.com\""
        ));
    }
    // A port follows the last ':', except inside an IPv6 address in brackets.
    let port = if name.starts_with('[') {
        name.split_once("]:").map(|(_, port)| port)
    } else {
        name.rsplit_once(':').map(|(_, port)| port)
    };
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|port| port > 0)
    {
        return Err(format!("{host:?} has the invalid port {port:?}; use a number from 1 to 65535"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entry: &str, host: &str, port: u16) -> bool {
        HostRule::parse(entry).unwrap().allows(host, port, Portless::AnyPort)
    }

    #[test]
    fn rules_match_names_wildcards_addresses_and_ports() {
        assert!(allows("api.example.com", "api.example.com", 443));
        assert!(allows("api.example.com", "API.example.com.", 80));
        assert!(!allows("api.example.com", "example.com", 443));
        assert!(allows("*.internal.net", "db.internal.net", 5432));
        assert!(!allows("*.internal.net", "internal.net", 80));
        assert!(!allows("*.internal.net", "evilinternal.net", 80));
        assert!(allows("127.0.0.1:8080", "127.0.0.1", 8080));
        assert!(!allows("127.0.0.1:8080", "127.0.0.1", 8081));
        assert!(allows("*", "anything.example", 80));
        assert!(!allows("*", "10.0.0.1", 80), "an address must be listed as one");
        assert!(!allows("*.example.com", "1.2.3.4", 80));
        assert!(allows("[::1]:8080", "[::1]", 8080));
        assert!(allows("10.0.0.5", "10.0.0.5", 5432));
    }

    #[test]
    fn an_entry_without_a_port_admits_only_web_ports_for_processes() {
        let rule = HostRule::parse("api.example.com").unwrap();
        assert!(rule.allows("api.example.com", 443, Portless::WebPorts));
        assert!(rule.allows("api.example.com", 80, Portless::WebPorts));
        assert!(!rule.allows("api.example.com", 5432, Portless::WebPorts));
        assert!(rule.allows("api.example.com", 5432, Portless::AnyPort));
    }

    #[test]
    fn malformed_entries_do_not_parse() {
        for entry in ["", "a:b", "a:0", "a:99999", "*.", "a*b", "*.*.x", "[::1"] {
            assert_eq!(HostRule::parse(entry), None, "{entry:?}");
        }
    }
}
