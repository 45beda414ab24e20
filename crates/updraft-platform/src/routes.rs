//! The route table: which function answers a method and path. Built whole from the
//! live functions and swapped atomically on deploy; lookups never touch the database.

use std::collections::HashMap;

use updraft_model::{FunctionName, HttpAuth, HttpTrigger, MethodSet, RoutePattern, RouteSegment};

/// One trigger's claim on a route.
#[derive(Debug, Clone)]
struct RouteEntry<T> {
    methods: MethodSet,
    route: RoutePattern,
    auth: HttpAuth,
    function: FunctionName,
    target: T,
}

/// Method and path to a target (the live function).
#[derive(Debug)]
pub struct RouteTable<T> {
    router: matchit::Router<usize>,
    /// Entries sharing a path shape, indexed by the router's value.
    shapes: Vec<Vec<RouteEntry<T>>>,
}

/// The outcome of a lookup.
#[derive(Debug)]
pub enum RouteMatch<'a, T> {
    Found {
        target: &'a T,
        function: &'a FunctionName,
        auth: HttpAuth,
        /// The route as declared, e.g. `/hello/{name}`.
        route: &'a RoutePattern,
        params: Vec<(String, String)>,
    },
    /// The path exists but not for this method; `allowed` lists the methods that are.
    MethodNotAllowed {
        allowed: Vec<String>,
    },
    NotFound,
}

/// Two triggers that cannot both be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{methods} {route} of function {function:?} conflicts with {other_methods} {other_route} of function {other_function:?}; give one of them another route or method"
)]
pub struct RouteConflict {
    pub function: FunctionName,
    pub methods: MethodSet,
    pub route: RoutePattern,
    pub other_function: FunctionName,
    pub other_methods: MethodSet,
    pub other_route: RoutePattern,
}

impl<T> RouteTable<T> {
    pub fn empty() -> Self {
        Self { router: matchit::Router::new(), shapes: Vec::new() }
    }

    /// Builds the table from every function's HTTP triggers, or reports the first two
    /// triggers that collide.
    pub fn build<'a>(
        triggers: impl IntoIterator<Item = (&'a FunctionName, &'a HttpTrigger, T)>,
    ) -> Result<Self, RouteConflict>
    where
        T: Clone,
    {
        let mut table = Self::empty();
        let mut by_shape: HashMap<String, usize> = HashMap::new();
        for (function, trigger, target) in triggers {
            let entry = RouteEntry {
                methods: trigger.methods.clone(),
                route: trigger.route.clone(),
                auth: trigger.auth,
                function: function.clone(),
                target,
            };
            let shape = trigger.route.shape_key();
            if let Some(&index) = by_shape.get(&shape) {
                if let Some(other) = table.shapes[index].iter().find(|o| o.methods.overlaps(&entry.methods)) {
                    return Err(conflict(&entry, other));
                }
                table.shapes[index].push(entry);
                continue;
            }
            let index = table.shapes.len();
            if let Err(error) = table.router.insert(matchit_pattern(&trigger.route), index) {
                // matchit refuses shapes it cannot order, e.g. a parameter and a
                // wildcard at the same position. Name the route it collided with.
                let other = match &error {
                    matchit::InsertError::Conflict { with } => {
                        table.shapes.iter().flatten().find(|o| matchit_pattern(&o.route) == *with)
                    }
                    _ => None,
                };
                return Err(match other {
                    Some(other) => conflict(&entry, other),
                    None => conflict(&entry, &entry),
                });
            }
            by_shape.insert(shape, index);
            table.shapes.push(vec![entry]);
        }
        Ok(table)
    }

    pub fn lookup(&self, method: &str, path: &str) -> RouteMatch<'_, T> {
        let Ok(matched) = self.router.at(path) else {
            return RouteMatch::NotFound;
        };
        let entries = &self.shapes[*matched.value];
        let Some(entry) = entries.iter().find(|e| e.methods.contains(method)) else {
            let mut allowed: Vec<String> = entries.iter().flat_map(|e| e.methods.methods.iter().cloned()).collect();
            allowed.sort();
            allowed.dedup();
            return RouteMatch::MethodNotAllowed { allowed };
        };
        // The router's parameters are positional (p0, p1, ...); give them the names
        // this trigger declared.
        let names = entry.route.segments().iter().filter_map(|segment| match segment {
            RouteSegment::Param(name) | RouteSegment::Wildcard(name) => Some(name.clone()),
            RouteSegment::Literal(_) => None,
        });
        let params = names.zip(matched.params.iter().map(|(_, value)| value.to_owned())).collect();
        RouteMatch::Found {
            target: &entry.target,
            function: &entry.function,
            auth: entry.auth,
            route: &entry.route,
            params,
        }
    }
}

fn conflict<T>(entry: &RouteEntry<T>, other: &RouteEntry<T>) -> RouteConflict {
    RouteConflict {
        function: entry.function.clone(),
        methods: entry.methods.clone(),
        route: entry.route.clone(),
        other_function: other.function.clone(),
        other_methods: other.methods.clone(),
        other_route: other.route.clone(),
    }
}

/// The pattern in matchit's syntax with positional parameter names, so that routes of
/// one shape but different parameter names share a node.
fn matchit_pattern(route: &RoutePattern) -> String {
    let mut pattern = String::new();
    for (i, segment) in route.segments().iter().enumerate() {
        pattern.push('/');
        match segment {
            RouteSegment::Literal(text) => pattern.push_str(&text.replace('{', "{{").replace('}', "}}")),
            RouteSegment::Param(_) => pattern.push_str(&format!("{{p{i}}}")),
            RouteSegment::Wildcard(_) => pattern.push_str(&format!("{{*p{i}}}")),
        }
    }
    if pattern.is_empty() { "/".to_owned() } else { pattern }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(methods: &[&str], route: &str) -> HttpTrigger {
        HttpTrigger {
            methods: MethodSet { methods: methods.iter().map(|m| m.to_string()).collect() },
            route: RoutePattern::parse(route).unwrap(),
            auth: HttpAuth::Public,
            alias: None,
            payload_format: Default::default(),
        }
    }

    fn name(n: &str) -> FunctionName {
        FunctionName::new(n).unwrap()
    }

    #[test]
    fn finds_params_wildcards_and_methods() {
        let (a, b, c) = (name("a"), name("b"), name("c"));
        let (t1, t2, t3, t4) = (
            trigger(&["GET"], "/hello"),
            trigger(&["GET"], "/hello/{name}"),
            trigger(&["DELETE"], "/hello/{id}"),
            trigger(&[], "/static/{*path}"),
        );
        let table = RouteTable::build([(&a, &t1, 1), (&b, &t2, 2), (&c, &t3, 3), (&a, &t4, 4)]).unwrap();
        match table.lookup("GET", "/hello/ada") {
            RouteMatch::Found { target, params, .. } => {
                assert_eq!(*target, 2);
                assert_eq!(params, vec![("name".to_owned(), "ada".to_owned())]);
            }
            other => panic!("unexpected {other:?}"),
        }
        match table.lookup("DELETE", "/hello/7") {
            RouteMatch::Found { target, params, .. } => {
                assert_eq!(*target, 3);
                assert_eq!(params, vec![("id".to_owned(), "7".to_owned())]);
            }
            other => panic!("unexpected {other:?}"),
        }
        match table.lookup("POST", "/hello/ada") {
            RouteMatch::MethodNotAllowed { allowed } => assert_eq!(allowed, ["DELETE", "GET"]),
            other => panic!("unexpected {other:?}"),
        }
        match table.lookup("PUT", "/static/css/site.css") {
            RouteMatch::Found { target, params, .. } => {
                assert_eq!(*target, 4);
                assert_eq!(params, vec![("path".to_owned(), "css/site.css".to_owned())]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(table.lookup("GET", "/nope"), RouteMatch::NotFound));
    }

    #[test]
    fn overlapping_claims_name_both_functions() {
        let (a, b) = (name("a"), name("b"));
        let (t1, t2) = (trigger(&["GET", "POST"], "/x/{id}"), trigger(&["POST"], "/x/{key}"));
        let error = RouteTable::build([(&a, &t1, ()), (&b, &t2, ())]).unwrap_err();
        assert_eq!(error.function, b);
        assert_eq!(error.other_function, a);
        let message = error.to_string();
        assert!(message.contains("\"a\"") && message.contains("\"b\""), "{message}");
    }
}
