//! HTTP trigger routes: `GET,POST /users/{id}` and `GET /static/{*path}`.

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

#[cfg(test)]
mod tests {
    use super::*;

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
