//! Guest components for tests, built from `guests/` by this crate's build script, and
//! hand-written components (in the WebAssembly text format) for the broken cases.

#![forbid(unsafe_code)]

include!(concat!(env!("OUT_DIR"), "/programs.rs"));

/// The bytes of a built guest; panics with the path when it is missing.
pub fn bytes(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading guest {path}: {e}"))
}

/// A component that imports an interface Updraft does not provide.
pub fn imports_unknown_interface() -> Vec<u8> {
    wat::parse_str(
        r#"(component
             (import "acme:teleport/beam@1.0.0" (instance
               (export "go" (func))))
           )"#,
    )
    .expect("valid component text")
}

/// A valid component with no exports at all (so no HTTP handler).
pub fn exports_nothing() -> Vec<u8> {
    wat::parse_str("(component)").expect("valid component text")
}

/// A core module: WebAssembly, but not a component.
pub fn core_module() -> Vec<u8> {
    wat::parse_str(r#"(module (func (export "_start")))"#).expect("valid module text")
}
