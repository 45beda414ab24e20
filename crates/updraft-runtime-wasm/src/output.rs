//! Captures a guest's stdout and stderr for one invocation, bounded in size.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::invoke::LogStream;

/// Output kept per invocation; past it, writes succeed but are dropped, and the log
/// says so. A guest must never fail (or trap) because it logged too much.
pub(crate) const OUTPUT_LIMIT: usize = 256 * 1024;

#[derive(Default)]
pub(crate) struct CapturedOutput {
    pub(crate) chunks: Vec<(LogStream, Vec<u8>)>,
    pub(crate) bytes: usize,
    pub(crate) truncated: bool,
}

/// One invocation's output, shared by its stdout and stderr streams.
#[derive(Clone, Default)]
pub(crate) struct OutputCapture {
    inner: Arc<Mutex<CapturedOutput>>,
}

impl OutputCapture {
    pub(crate) fn stream(&self, stream: LogStream) -> CaptureStream {
        CaptureStream { capture: self.clone(), stream }
    }

    pub(crate) fn take(&self) -> CapturedOutput {
        std::mem::take(&mut *self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn append(&self, stream: LogStream, bytes: &[u8]) {
        let mut output = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let room = OUTPUT_LIMIT.saturating_sub(output.bytes);
        let kept = &bytes[..bytes.len().min(room)];
        if kept.len() < bytes.len() {
            output.truncated = true;
        }
        if kept.is_empty() {
            return;
        }
        output.bytes += kept.len();
        match output.chunks.last_mut() {
            Some((last, chunk)) if *last == stream => chunk.extend_from_slice(kept),
            _ => output.chunks.push((stream, kept.to_vec())),
        }
    }
}

/// The guest's view of one of its output streams.
#[derive(Clone)]
pub(crate) struct CaptureStream {
    capture: OutputCapture,
    stream: LogStream,
}

impl IsTerminal for CaptureStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CaptureStream {
    /// Writes straight into the buffer. The default adapter runs a background task
    /// per stream, two more tasks to spawn and wake on every invocation.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CaptureStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.capture.append(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready; what exceeds the limit is dropped in `append`, not refused,
        // so a chatty guest never blocks or fails on its logs.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CaptureStream {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CaptureStream {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.capture.append(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
