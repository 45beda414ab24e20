//! The SMTP listener: accepts mail for the addresses that `email` triggers claim and
//! turns each message into an asynchronous event per claiming function. The protocol
//! is parsed by `smtp-proto` and the message by `mail-parser` (both from the Stalwart
//! mail server); this crate only drives them over Tokio sockets.
//!
//! `250` is answered only after the events are committed; a recipient nobody claims is
//! refused with `550`, a message over the size limit with `552`, a storage failure with
//! `451` (the client retries later).

#![forbid(unsafe_code)]

mod message;
mod session;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use updraft_platform::Platform;

pub use message::parse_message;

/// How the listener behaves.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// The name the server greets with.
    pub hostname: String,
    /// The largest message accepted, in bytes (advertised with `SIZE`).
    pub max_message_bytes: usize,
    /// A connection idle this long is closed.
    pub idle_timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self { hostname: "updraft".to_owned(), max_message_bytes: 10 << 20, idle_timeout: Duration::from_secs(300) }
    }
}

/// The most SMTP sessions at once; past it, new connections wait to be accepted.
const MAX_SESSIONS: usize = 256;

/// Serves SMTP on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    platform: Arc<Platform>,
    config: SmtpConfig,
    mut stop: watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    let sessions = Arc::new(tokio::sync::Semaphore::new(MAX_SESSIONS));
    loop {
        let Ok(permit) = sessions.clone().acquire_owned().await else { return };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let (platform, config) = (platform.clone(), config.clone());
                tokio::spawn(async move {
                    if let Err(error) = session::run(stream, &platform, &config).await {
                        tracing::debug!(%peer, %error, "SMTP session ended with an error");
                    }
                    drop(permit);
                });
            }
            Err(error) => {
                tracing::warn!(%error, "cannot accept an SMTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
