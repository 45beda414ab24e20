//! The AWS identity Updraft presents: the account and region that ARNs, Lambda's
//! events and SigV4 signatures name.

/// The account id that ARNs name: one tenant per server for now.
pub const ACCOUNT_ID: &str = "000000000000";
/// The region that ARNs name and SigV4 signatures are checked against.
pub const REGION: &str = "us-east-1";
