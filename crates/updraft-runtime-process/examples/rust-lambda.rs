//! A Lambda function written with AWS's `lambda_runtime` crate, unchanged: the
//! conformance tests run its binary as a `provided` runtime's `bootstrap`. The crate
//! panics at start-up unless the reserved environment variables are set, and on the
//! first event unless `next` carries the request-id and deadline headers.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    if let Some(reason) = payload.get("fail").and_then(Value::as_str) {
        return Err(reason.into());
    }
    Ok(json!({
        "client": "lambda_runtime",
        "request_id": context.request_id,
        "function_name": context.env_config.function_name,
        "memory": context.env_config.memory,
        "version": context.env_config.version,
        "arn": context.invoked_function_arn,
        "event": payload,
    }))
}
