//! A request's or a response's body: whole (what wasm components and Lambda handlers
//! take and answer with), or streaming while its producer still runs (a client's upload
//! on its way to a web server; a web server's chunked answer). A streamed body that
//! stops before its producer says it is complete (a timeout, a crash, a size limit, a
//! client gone) ends in an error, never as a clean end, so a reader never takes a cut
//! body for a whole one.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

/// What a function answers with: a head, and a body that may still be streaming.
pub type FunctionResponse = http::Response<Body>;

/// An HTTP request for a function: a head, and a body that may still be arriving.
pub type HttpRequest = http::Request<Body>;

/// How many chunks wait between a producer and a slow reader before the producer
/// waits: a streaming function runs at the pace its client reads, an upload at the
/// pace the function reads it.
const BUFFERED_CHUNKS: usize = 16;

/// A body, whole or streaming.
pub struct Body(Inner);

enum Inner {
    /// Emptied as it is read.
    Whole(Bytes),
    Streaming {
        pieces: mpsc::Receiver<Piece>,
        ended: bool,
    },
}

enum Piece {
    Data(Bytes),
    End,
}

/// The body stopped before its producer finished it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the body was cut off before it was complete")]
pub struct BodyCut;

/// The sending half of a streaming body.
pub struct BodySender(mpsc::Sender<Piece>);

/// The reader of a streaming body is gone (a client or a function went away).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderGone;

impl BodySender {
    /// Sends one chunk, waiting while the reader is `BUFFERED_CHUNKS` behind.
    pub async fn send(&self, chunk: Bytes) -> Result<(), ReaderGone> {
        self.0.send(Piece::Data(chunk)).await.map_err(|_| ReaderGone)
    }

    /// Marks the body complete. Dropping the sender without this cuts the body.
    pub async fn finish(self) -> Result<(), ReaderGone> {
        self.0.send(Piece::End).await.map_err(|_| ReaderGone)
    }
}

impl Body {
    /// A body that is all there.
    pub fn whole(bytes: impl Into<Bytes>) -> Self {
        Self(Inner::Whole(bytes.into()))
    }

    /// A streaming body and the sender that feeds it.
    pub fn channel() -> (BodySender, Self) {
        let (sender, pieces) = mpsc::channel(BUFFERED_CHUNKS);
        (BodySender(sender), Self(Inner::Streaming { pieces, ended: false }))
    }

    /// Whether the body is still arriving from its producer.
    pub fn is_streaming(&self) -> bool {
        matches!(self.0, Inner::Streaming { .. })
    }

    /// The bytes of a whole body; `None` while it streams.
    pub fn as_whole(&self) -> Option<&Bytes> {
        match &self.0 {
            Inner::Whole(bytes) => Some(bytes),
            Inner::Streaming { .. } => None,
        }
    }

    /// Reads the whole body: at once when it is whole, else as the producer sends it.
    pub async fn read_whole(self) -> Result<Bytes, BodyCut> {
        match self.0 {
            Inner::Whole(bytes) => Ok(bytes),
            Inner::Streaming { mut pieces, .. } => {
                let mut whole = bytes::BytesMut::new();
                loop {
                    match pieces.recv().await {
                        Some(Piece::Data(chunk)) => whole.extend_from_slice(&chunk),
                        Some(Piece::End) => return Ok(whole.freeze()),
                        None => return Err(BodyCut),
                    }
                }
            }
        }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Self::whole(bytes)
    }
}

impl Default for Body {
    fn default() -> Self {
        Self::whole(Bytes::new())
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Whole(bytes) => f.debug_tuple("Whole").field(&bytes.len()).finish(),
            Inner::Streaming { .. } => f.write_str("Streaming"),
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyCut;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyCut>>> {
        match &mut self.get_mut().0 {
            Inner::Whole(bytes) if bytes.is_empty() => Poll::Ready(None),
            Inner::Whole(bytes) => Poll::Ready(Some(Ok(Frame::data(std::mem::take(bytes))))),
            Inner::Streaming { ended: true, .. } => Poll::Ready(None),
            Inner::Streaming { pieces, ended } => match pieces.poll_recv(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Piece::Data(chunk))) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
                Poll::Ready(Some(Piece::End)) => {
                    *ended = true;
                    Poll::Ready(None)
                }
                Poll::Ready(None) => {
                    *ended = true;
                    Poll::Ready(Some(Err(BodyCut)))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Whole(bytes) => bytes.is_empty(),
            Inner::Streaming { ended, .. } => *ended,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Whole(bytes) => SizeHint::with_exact(bytes.len() as u64),
            Inner::Streaming { .. } => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn a_finished_stream_reads_whole_and_a_dropped_one_is_cut() {
        let (sender, body) = Body::channel();
        tokio::spawn(async move {
            sender.send(Bytes::from_static(b"one ")).await.unwrap();
            sender.send(Bytes::from_static(b"two")).await.unwrap();
            sender.finish().await.unwrap();
        });
        assert_eq!(body.read_whole().await.unwrap(), "one two");

        let (sender, body) = Body::channel();
        tokio::spawn(async move {
            sender.send(Bytes::from_static(b"half")).await.unwrap();
        });
        assert_eq!(body.read_whole().await, Err(BodyCut));
    }

    #[tokio::test]
    async fn a_cut_stream_ends_in_an_error_for_an_http_server_too() {
        let (sender, mut body) = Body::channel();
        sender.send(Bytes::from_static(b"first")).await.unwrap();
        drop(sender);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "first");
        assert!(matches!(body.frame().await, Some(Err(BodyCut))));
        assert!(body.frame().await.is_none());

        let mut whole = Body::whole("all");
        assert_eq!(whole.size_hint().exact(), Some(3));
        assert_eq!(whole.frame().await.unwrap().unwrap().into_data().unwrap(), "all");
        assert!(whole.is_end_stream());
    }

    #[tokio::test]
    async fn a_gone_reader_is_reported_to_the_producer() {
        let (sender, body) = Body::channel();
        drop(body);
        assert_eq!(sender.send(Bytes::from_static(b"x")).await, Err(ReaderGone));
    }
}
