//! What Lambda's Invoke API request carries besides its payload, parsed: the function
//! as a name, `name:qualifier` or an ARN, the base64 client context, and the access key
//! a SigV4 `Authorization` header names. Pure functions, so that the HTTP layer maps
//! them to Lambda's errors and the fuzzer can reach them without a server.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Lambda's limit on the base64 client context.
pub const CLIENT_CONTEXT_LIMIT: usize = 3583;

/// Splits `name`, `name:qualifier` or a full or partial ARN into the function's name
/// and the qualifier it carries.
pub fn parse_function_name(raw: &str) -> (&str, Option<&str>) {
    let rest = match raw.find("function:") {
        Some(at) if raw.starts_with("arn:") || raw[..at].chars().all(|c| c.is_ascii_digit() || c == ':') => {
            &raw[at + "function:".len()..]
        }
        _ => raw,
    };
    match rest.split_once(':') {
        Some((name, qualifier)) => (name, Some(qualifier)),
        None => (rest, None),
    }
}

/// Why a client context was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientContextError {
    #[error("Client context must be at most {CLIENT_CONTEXT_LIMIT} bytes, base64-encoded")]
    TooLong,
    #[error("Client context must be a valid Base64-encoded JSON object.")]
    Invalid,
}

/// The client context: base64 JSON object, at most 3,583 bytes encoded; returns the
/// JSON text.
pub fn decode_client_context(encoded: &str) -> Result<String, ClientContextError> {
    if encoded.len() > CLIENT_CONTEXT_LIMIT {
        return Err(ClientContextError::TooLong);
    }
    let decoded = BASE64.decode(encoded).map_err(|_| ClientContextError::Invalid)?;
    let text = String::from_utf8(decoded).map_err(|_| ClientContextError::Invalid)?;
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text)
        .map_err(|_| ClientContextError::Invalid)?;
    Ok(text)
}

/// Why an `Authorization` header names no access key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialError {
    /// No header at all.
    Missing,
    /// Not SigV4, or no `Credential=`.
    NotSigV4,
}

/// The access key id a SigV4 `Authorization` header names (`AWS4-HMAC-SHA256
/// Credential=AKID/date/region/service/aws4_request, ...`).
pub fn credential_key_id(authorization: Option<&str>) -> Result<&str, CredentialError> {
    let authorization = authorization.ok_or(CredentialError::Missing)?;
    let credential = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .and_then(|rest| rest.split(',').find_map(|part| part.trim().strip_prefix("Credential=")))
        .ok_or(CredentialError::NotSigV4)?;
    let key_id = credential.split('/').next().unwrap_or_default();
    if key_id.is_empty() { Err(CredentialError::NotSigV4) } else { Ok(key_id) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_come_plain_qualified_or_as_arns() {
        assert_eq!(parse_function_name("hello"), ("hello", None));
        assert_eq!(parse_function_name("hello:7"), ("hello", Some("7")));
        assert_eq!(parse_function_name("arn:aws:lambda:us-east-1:000000000000:function:hello"), ("hello", None));
        assert_eq!(
            parse_function_name("arn:aws:lambda:us-east-1:000000000000:function:hello:$LATEST"),
            ("hello", Some("$LATEST"))
        );
        assert_eq!(parse_function_name("000000000000:function:hello"), ("hello", None));
    }

    #[test]
    fn client_contexts_must_be_base64_json_objects() {
        let good = BASE64.encode(r#"{"custom":{"a":1}}"#);
        assert_eq!(decode_client_context(&good).ok().as_deref(), Some(r#"{"custom":{"a":1}}"#));
        assert_eq!(decode_client_context("not base64!"), Err(ClientContextError::Invalid));
        assert_eq!(decode_client_context(&BASE64.encode("[1]")), Err(ClientContextError::Invalid));
        assert_eq!(decode_client_context(&"A".repeat(4000)), Err(ClientContextError::TooLong));
    }

    #[test]
    fn the_access_key_comes_from_a_sigv4_credential_only() {
        let header = "AWS4-HMAC-SHA256 Credential=AKUPABC/20261204/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=00";
        assert_eq!(credential_key_id(Some(header)), Ok("AKUPABC"));
        assert_eq!(credential_key_id(None), Err(CredentialError::Missing));
        assert_eq!(credential_key_id(Some("Bearer token")), Err(CredentialError::NotSigV4));
        assert_eq!(credential_key_id(Some("AWS4-HMAC-SHA256 Credential=/x")), Err(CredentialError::NotSigV4));
    }
}
