//! Reading request bodies under a size limit, refusing early when the declared length
//! is already too large (so a client that waits for `100 Continue` sends nothing); and
//! reading one while passing each piece on as it arrives (to a home node); and
//! streaming one to a function that reads it as it arrives (a web server).

use axum::body::Body;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::ApiError;

/// Reads `body` whole, or fails with 413 `payload_too_large` naming the limit.
pub(crate) async fn read_limited(
    headers: &http::HeaderMap,
    body: Body,
    limit: usize,
    what: &str,
) -> Result<Bytes, ApiError> {
    check_declared(headers, limit, what)?;
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(read_error(&*error, limit, what)),
    }
}

/// Streams `body` to a function as it arrives, under `limit`. The task ends with how
/// the reading went: a body too large or cut off is the client's error (the function
/// sees its body cut, never a clean end); a function that stopped reading ends it early.
pub(crate) fn stream_limited(
    headers: &http::HeaderMap,
    body: Body,
    limit: usize,
    what: &'static str,
) -> Result<(updraft_platform::Body, tokio::task::JoinHandle<Result<(), ApiError>>), ApiError> {
    check_declared(headers, limit, what)?;
    let (sender, streamed) = updraft_platform::Body::channel();
    let pump = tokio::spawn(async move {
        let mut body = Limited::new(body, limit);
        while let Some(frame) = body.frame().await {
            match frame.map(http_body::Frame::into_data) {
                Ok(Ok(data)) => {
                    if sender.send(data).await.is_err() {
                        return Ok(());
                    }
                }
                Ok(Err(_trailers)) => {}
                Err(error) => return Err(read_error(&*error, limit, what)),
            }
        }
        let _ = sender.finish().await;
        Ok(())
    });
    Ok((streamed, pump))
}

/// Reads `body` under `limit` as [`read_limited`] does, and hands each piece to the
/// returned stream as it arrives, keeping them all: the task gives the whole body,
/// also when whoever reads the stream stops early (a refused forward runs here).
pub(crate) fn read_passing_on(
    headers: &http::HeaderMap,
    body: Body,
    limit: usize,
    what: &'static str,
) -> Result<(PassedOn, tokio::task::JoinHandle<Result<Bytes, ApiError>>), ApiError> {
    check_declared(headers, limit, what)?;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let reader = tokio::spawn(async move {
        let mut body = Limited::new(body, limit);
        let mut kept = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        kept.extend_from_slice(&data);
                        // A reader gone early is fine: the body is still kept whole.
                        let _ = sender.send(Ok(data)).await;
                    }
                }
                Err(error) => {
                    let _ = sender.send(Err(std::io::Error::other("the request body was cut off"))).await;
                    return Err(read_error(&*error, limit, what));
                }
            }
        }
        Ok(Bytes::from(kept))
    });
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|piece| (piece, receiver))
    });
    Ok((Box::pin(stream), reader))
}

/// The pieces of a body as [`read_passing_on`] reads them.
pub(crate) type PassedOn = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Refuses a body whose declared length is over `limit` before reading it.
fn check_declared(headers: &http::HeaderMap, limit: usize, what: &str) -> Result<(), ApiError> {
    let declared =
        headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large(limit, what));
    }
    Ok(())
}

fn read_error(error: &(dyn std::error::Error + Send + Sync + 'static), limit: usize, what: &str) -> ApiError {
    if error.is::<LengthLimitError>() {
        too_large(limit, what)
    } else {
        ApiError::bad_request(format!("could not read the {what}: {error}"))
    }
}

fn too_large(limit: usize, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the {what} is larger than the limit of {}", human_bytes(limit)),
    )
}

fn human_bytes(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) { format!("{} MiB", bytes / MIB) } else { format!("{bytes} bytes") }
}
