//! The SMTP listener: accepts mail for the addresses that `email` triggers claim and
//! turns each message into an asynchronous event per claiming function. The protocol
//! is parsed by `smtp-proto` and the message by `mail-parser` (both from the Stalwart
//! mail server); this crate only drives them over Tokio sockets, and hands what it
//! accepts to a [`Mailbox`] (the platform, in the server).
//!
//! `250` is answered only after the events are committed; a recipient nobody claims is
//! refused with `550`, a message over the size limit with `552`, a storage failure with
//! `451` (the client retries later).
//!
//! Every session is bounded: a client must say `EHLO` or `HELO` before `MAIL`, stays
//! idle at most `idle_timeout` and connected at most `session_timeout`, and holds at
//! most `max_sessions_per_client` of the `max_sessions` sessions; a connection past a
//! limit is answered `421` at once and closed, so idle clients never keep others from
//! their greeting.

#![forbid(unsafe_code)]

mod message;
mod session;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use message::parse_message;
pub use session::session;

/// A boxed future, so that [`Mailbox`] stays object safe.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Where accepted mail goes.
pub trait Mailbox: Send + Sync + 'static {
    /// Whether some function receives mail for `address`.
    fn accepts(&self, address: &str) -> bool;

    /// Stores the message durably for the functions claiming `recipients` (the event of
    /// each made by `payload` from the recipients it claims) and returns the events'
    /// ids: empty when no function claims any of them any more. `250` follows `Ok`.
    fn deliver<'a>(
        &'a self,
        from: &'a str,
        recipients: &'a [String],
        payload: &'a (dyn Fn(&[String]) -> Vec<u8> + Sync),
    ) -> BoxFuture<'a, Result<Vec<String>, String>>;
}

/// How the listener behaves.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// The name the server greets with.
    pub hostname: String,
    /// The largest message accepted, in bytes (advertised with `SIZE`).
    pub max_message_bytes: usize,
    /// A connection idle this long is closed.
    pub idle_timeout: Duration,
    /// A session is closed this long after it started, however busy.
    pub session_timeout: Duration,
    /// Sessions at once, from all clients.
    pub max_sessions: usize,
    /// Sessions at once from one client address.
    pub max_sessions_per_client: usize,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            hostname: "updraft".to_owned(),
            max_message_bytes: 10 << 20,
            idle_timeout: Duration::from_secs(60),
            session_timeout: Duration::from_secs(600),
            max_sessions: 256,
            max_sessions_per_client: 16,
        }
    }
}

/// Serves SMTP on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    mailbox: Arc<dyn Mailbox>,
    config: SmtpConfig,
    mut stop: watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    let sessions = Arc::new(tokio::sync::Semaphore::new(config.max_sessions));
    let per_client: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "cannot accept an SMTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = sessions.clone().try_acquire_owned() else {
            tokio::spawn(session::refuse(stream, "4.3.2 too many sessions; try again later"));
            continue;
        };
        let Some(client) = ClientSlot::take(&per_client, peer.ip(), config.max_sessions_per_client) else {
            tokio::spawn(session::refuse(stream, "4.7.0 too many sessions from your address; try again later"));
            continue;
        };
        let (mailbox, config) = (mailbox.clone(), config.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            if let Err(error) = session::session(stream, mailbox.as_ref(), &config).await {
                tracing::debug!(%peer, %error, "SMTP session ended with an error");
            }
            drop(client);
            drop(permit);
        });
    }
}

/// One of a client address's sessions; given back when dropped.
struct ClientSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    address: IpAddr,
}

impl ClientSlot {
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, address: IpAddr, limit: usize) -> Option<ClientSlot> {
        let mut map = counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = map.entry(address).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot { counts: counts.clone(), address })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = map.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.address);
            }
        }
    }
}
