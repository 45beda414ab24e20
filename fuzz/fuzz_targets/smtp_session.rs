//! The SMTP session: whatever a client sends, the session answers and ends (when the
//! client stops sending) without a panic, and stores only messages that fit an event.
#![no_main]

use std::sync::Mutex;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use updraft_smtp::{BoxFuture, Mailbox, SmtpConfig, session};

/// Accepts mail for `*@updraft.test` and keeps the payloads.
#[derive(Default)]
struct Collect {
    stored: Mutex<Vec<Vec<u8>>>,
}

impl Mailbox for Collect {
    fn accepts(&self, address: &str) -> bool {
        address.ends_with("@updraft.test")
    }

    fn deliver<'a>(
        &'a self,
        _from: &'a str,
        recipients: &'a [String],
        payload: &'a (dyn Fn(&[String]) -> Vec<u8> + Sync),
    ) -> BoxFuture<'a, Result<Vec<String>, String>> {
        Box::pin(async move {
            let event = payload(recipients);
            assert!(event.len() <= 1 << 20, "an event over 1 MiB was stored");
            self.stored.lock().unwrap().push(event);
            Ok(vec!["id".to_owned()])
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    runtime.block_on(async {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let config = SmtpConfig {
            max_message_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(5),
            session_timeout: Duration::from_secs(10),
            ..SmtpConfig::default()
        };
        let mailbox = Collect::default();
        let (mut read, mut write) = tokio::io::split(client);
        let talk = async {
            // A greeting first, so that the commands reach a greeted session now and then.
            let _ = write.write_all(b"EHLO fuzz\r\n").await;
            let _ = write.write_all(data).await;
            let _ = write.shutdown().await;
        };
        let listen = async {
            let mut answers = Vec::new();
            let _ = read.read_to_end(&mut answers).await;
        };
        let (_, _, served) = tokio::join!(talk, listen, session(server, &mailbox, &config));
        let _ = served;
    });
});
