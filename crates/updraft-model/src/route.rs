//! HTTP trigger routes: `GET,POST /users/{id}` and `GET /static/{*path}`, and the grammar of an
//! `http` trigger (methods, then the route).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The methods a trigger answers. `None` in `methods` means any method.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MethodSet {
    /// Upper-case method names, sorted and deduplicated; empty means any method (`*`).
    pub methods: Vec<String>,
}

impl MethodSet {
    pub fn any() -> Self {
        Self { methods: Vec::new() }
    }

    pub fn is_any(&self) -> bool {
        self.methods.is_empty()
    }

    pub fn contains(&self, method: &str) -> bool {
        self.is_any() || self.methods.iter().any(|m| m == method)
    }

    /// Whether some method is answered by both sets.
    pub fn overlaps(&self, other: &MethodSet) -> bool {
        self.is_any() || other.is_any() || self.methods.iter().any(|m| other.methods.contains(m))
    }
}

impl fmt::Display for MethodSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() { f.write_str("*") } else { f.write_str(&self.methods.join(",")) }
    }
}

/// One segment of a route pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RouteSegment {
    /// Matches exactly this text.
    Literal(String),
    /// `{name}`: matches one non-empty segment, captured as `name`.
    Param(String),
    /// `{*name}`: the last segment only; matches the rest of the path (possibly empty).
    Wildcard(String),
}

/// `.` or `..`, also percent-encoded (`%2e%2E`).
fn is_dot_segment(segment: &str) -> bool {
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

/// A route such as `/users/{id}` or `/static/{*path}`: always starts with `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoutePattern {
    segments: Vec<RouteSegment>,
}

impl RoutePattern {
    /// Parses a route, or says what is wrong with it.
    pub fn parse(route: &str) -> Result<Self, String> {
        let Some(rest) = route.strip_prefix('/') else {
            return Err(format!("route {route:?} must start with '/'"));
        };
        let mut segments = Vec::new();
        if rest.is_empty() {
            return Ok(Self { segments });
        }
        let parts: Vec<&str> = rest.split('/').collect();
        let mut names = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                let (wildcard, name) = match inner.strip_prefix('*') {
                    Some(name) => (true, name),
                    None => (false, inner),
                };
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!(
                        "route {route:?}: parameter {part:?} needs a name of letters, digits and '_', like {{id}}"
                    ));
                }
                if names.contains(&name) {
                    return Err(format!("route {route:?}: parameter {{{name}}} appears twice"));
                }
                names.push(name);
                if wildcard {
                    if !last {
                        return Err(format!("route {route:?}: the wildcard {part:?} must be the last segment"));
                    }
                    segments.push(RouteSegment::Wildcard(name.to_owned()));
                } else {
                    segments.push(RouteSegment::Param(name.to_owned()));
                }
            } else if part.contains(['{', '}']) {
                return Err(format!(
                    "route {route:?}: segment {part:?} mixes text and a parameter; a parameter takes a whole segment, like /users/{{id}}"
                ));
            } else if part.is_empty() && !last {
                return Err(format!("route {route:?} has an empty segment ('//')"));
            } else if part.contains(['?', '#', ' ']) {
                return Err(format!(
                    "route {route:?}: segment {part:?} contains '?', '#' or a space; a route is a path only"
                ));
            } else if is_dot_segment(part) {
                return Err(format!(
                    "route {route:?}: segment {part:?} is a dot segment, which clients and proxies resolve away \
                     (so it could stand for another path); remove it"
                ));
            } else if part.contains('%') {
                return Err(format!(
                    "route {route:?}: segment {part:?} contains '%'; write the characters themselves, not their \
                     percent-encoding"
                ));
            } else if part.chars().any(char::is_control) {
                return Err(format!("route {route:?}: segment {part:?} contains a control character"));
            } else {
                segments.push(RouteSegment::Literal((*part).to_owned()));
            }
        }
        Ok(Self { segments })
    }

    pub fn segments(&self) -> &[RouteSegment] {
        &self.segments
    }

    /// Whether `path` (without its query) is one this route takes.
    pub fn matches(&self, path: &str) -> bool {
        let mut parts = path.strip_prefix('/').unwrap_or(path).split('/').filter(|part| !part.is_empty());
        for segment in &self.segments {
            match segment {
                RouteSegment::Wildcard(_) => return true,
                RouteSegment::Literal(text) => {
                    if parts.next() != Some(text.as_str()) {
                        return false;
                    }
                }
                RouteSegment::Param(_) => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }

    /// The same shape with parameter names erased: two routes with equal keys match the
    /// same paths (`/users/{id}` and `/users/{name}` collide).
    pub fn shape_key(&self) -> String {
        let mut key = String::new();
        for segment in &self.segments {
            key.push('/');
            match segment {
                RouteSegment::Literal(text) => key.push_str(text),
                RouteSegment::Param(_) => key.push_str("{}"),
                RouteSegment::Wildcard(_) => key.push_str("{*}"),
            }
        }
        if key.is_empty() { "/".to_owned() } else { key }
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for segment in &self.segments {
            match segment {
                RouteSegment::Literal(text) => write!(f, "/{text}")?,
                RouteSegment::Param(name) => write!(f, "/{{{name}}}")?,
                RouteSegment::Wildcard(name) => write!(f, "/{{*{name}}}")?,
            }
        }
        Ok(())
    }
}

impl TryFrom<String> for RoutePattern {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value)
    }
}

impl From<RoutePattern> for String {
    fn from(route: RoutePattern) -> String {
        route.to_string()
    }
}

/// The methods an HTTP trigger may name, in the order messages list them.
const HTTP_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Parses an HTTP trigger: `"METHODS ROUTE"` or `"ROUTE"` alone for any method.
pub(crate) fn parse_http(text: &str) -> Result<(MethodSet, RoutePattern), String> {
    let example = "like \"GET /hello\" or \"GET,POST /hello/{name}\"";
    let words: Vec<&str> = text.split_whitespace().collect();
    let (methods, route) = match words.as_slice() {
        [] => {
            return Err(format!("the trigger is empty; write the methods and the route, {example}"));
        }
        [word] if !word.starts_with('/') && looks_like_methods(word) => {
            return Err(format!("{text:?} has no route; add one after the methods, like \"{word} /hello\""));
        }
        [route] => (MethodSet::any(), *route),
        [route, methods] if route.starts_with('/') && !methods.starts_with('/') => {
            return Err(format!("{text:?} puts the route first; write the methods first, like \"{methods} {route}\""));
        }
        [methods, route] => (parse_methods(methods)?, *route),
        _ => {
            return Err(format!(
                "{text:?} has too many spaces; write the methods, one space and the route, {example} \
                 (separate methods with commas, without spaces)"
            ));
        }
    };
    let route = RoutePattern::parse(route)?;
    let reserved = match route.segments() {
        // The control plane, the dashboard, and the Lambda API's (`/2015-03-31/functions/...`).
        [RouteSegment::Literal(first), ..] if first == "v1" || first == "ui" || first == "2015-03-31" => true,
        [RouteSegment::Literal(only)] => only == "healthz" || only == "metrics",
        _ => false,
    };
    if reserved {
        return Err(format!(
            "route {route} is Updraft's own (/v1/..., /ui/..., /2015-03-31/..., /healthz and /metrics are the \
             server's); pick another path"
        ));
    }
    Ok((methods, route))
}

fn looks_like_methods(word: &str) -> bool {
    word == "*" || word.split(',').any(|method| HTTP_METHODS.contains(&method.to_ascii_uppercase().as_str()))
}

/// Parses `*` or a comma-separated list of methods in any case.
pub(crate) fn parse_methods(text: &str) -> Result<MethodSet, String> {
    if text == "*" {
        return Ok(MethodSet::any());
    }
    let mut methods = Vec::new();
    for method in text.split(',') {
        let upper = method.to_ascii_uppercase();
        if upper == "*" {
            return Err(format!(
                "{text:?} mixes \"*\" with other methods; write \"*\" alone for any method, or list methods"
            ));
        }
        if upper.is_empty() {
            return Err(format!(
                "{text:?} has an empty method; separate methods with single commas, like \"GET,POST\""
            ));
        }
        if !HTTP_METHODS.contains(&upper.as_str()) {
            return Err(format!(
                "unknown method {method:?}; use \"*\" for any method, or some of {} separated by commas",
                HTTP_METHODS.join(", ")
            ));
        }
        methods.push(upper);
    }
    methods.sort();
    methods.dedup();
    Ok(MethodSet { methods })
}

/// The methods both sets answer.
pub(crate) fn overlap(a: &MethodSet, b: &MethodSet) -> MethodSet {
    match (a.is_any(), b.is_any()) {
        (true, _) => b.clone(),
        (false, true) => a.clone(),
        (false, false) => MethodSet { methods: a.methods.iter().filter(|m| b.methods.contains(m)).cloned().collect() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_paths_they_take() {
        let route = |text: &str| RoutePattern::parse(text).unwrap();
        assert!(route("/").matches("/"));
        assert!(!route("/").matches("/a"));
        assert!(route("/items/{id}").matches("/items/7"));
        assert!(!route("/items/{id}").matches("/items"));
        assert!(!route("/items/{id}").matches("/items/7/parts"));
        assert!(!route("/items/{id}").matches("/things/7"));
        assert!(route("/static/{*path}").matches("/static"));
        assert!(route("/static/{*path}").matches("/static/css/site.css"));
    }

    #[test]
    fn dot_segments_percent_signs_and_control_characters_are_refused() {
        for route in ["/../v1/keys", "/a/./b", "/%2e%2e/metrics", "/%2E./x", "/a%20b", "/a\u{7}b"] {
            let error = RoutePattern::parse(route).unwrap_err();
            assert!(
                error.contains("dot segment") || error.contains('%') || error.contains("control"),
                "{route}: {error}"
            );
        }
        assert!(RoutePattern::parse("/files/v1.2/a..b/.well-known").is_ok(), "dots inside names are fine");
    }

    #[test]
    fn routes_parse_and_print() {
        for route in ["/", "/hello", "/hello/{name}", "/static/{*path}", "/a/b/"] {
            assert_eq!(RoutePattern::parse(route).unwrap().to_string(), route);
        }
    }

    #[test]
    fn bad_routes_say_why() {
        assert!(RoutePattern::parse("hello").unwrap_err().contains("must start with '/'"));
        assert!(RoutePattern::parse("/{*rest}/x").unwrap_err().contains("last segment"));
        assert!(RoutePattern::parse("/a{b}").unwrap_err().contains("whole segment"));
        assert!(RoutePattern::parse("/{id}/{id}").unwrap_err().contains("twice"));
        assert!(RoutePattern::parse("/a//b").unwrap_err().contains("empty segment"));
    }

    #[test]
    fn shapes_ignore_parameter_names() {
        let a = RoutePattern::parse("/users/{id}").unwrap();
        let b = RoutePattern::parse("/users/{name}").unwrap();
        assert_eq!(a.shape_key(), b.shape_key());
    }
}
