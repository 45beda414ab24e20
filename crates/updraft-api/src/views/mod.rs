//! What the API answers: serializable views, separate from the domain types so the
//! wire shape changes only on purpose (snapshots in the end-to-end tests show each
//! change). One module per resource, re-exported here.

mod apps;
mod errors;
mod events;
mod functions;
mod keys;
mod nodes;
mod observe;
mod secrets;
mod status;
mod traces;

pub use apps::*;
pub use errors::*;
pub use events::*;
pub use functions::*;
pub use keys::*;
pub use nodes::*;
pub use observe::*;
pub use secrets::*;
pub use status::*;
pub use traces::*;
