//! One SMTP session: greeting, commands, and for each message the DATA phase, driven
//! by `smtp-proto`'s receivers over a Tokio socket.

use std::io;

use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver, RequestReceiver};
use smtp_proto::{EXT_8BIT_MIME, EXT_ENHANCED_STATUS_CODES, EXT_PIPELINING, EXT_SIZE, EhloResponse, Error, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::message::parse_message;
use crate::{Mailbox, SmtpConfig};

/// The most recipients of one message.
const MAX_RECIPIENTS: usize = 100;

/// Where the session is.
enum Phase {
    Commands,
    /// Reading a message; `discarding` once it went over the size limit.
    Data {
        receiver: DataReceiver,
        discarding: Option<DummyDataReceiver>,
    },
}

/// The envelope of the message being received.
#[derive(Default)]
struct Envelope {
    /// The client said `EHLO` or `HELO` (which `MAIL` needs).
    greeted: bool,
    from: Option<String>,
    to: Vec<String>,
    /// The `SIZE` of the last `MAIL` line overflowed what a number here can hold.
    oversized_declaration: bool,
}

/// Answers a connection over a limit with `421` and closes it.
pub(crate) async fn refuse(mut stream: TcpStream, text: &str) {
    let mut out = Vec::new();
    reply(&mut out, 421, text);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.write_all(&out)).await;
}

/// Runs one SMTP session on `stream`, closing it with `421` once `session_timeout`
/// has passed.
pub async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    mailbox: &dyn Mailbox,
    config: &SmtpConfig,
) -> io::Result<()> {
    match tokio::time::timeout(config.session_timeout, converse(&mut stream, mailbox, config)).await {
        Ok(result) => result,
        Err(_) => {
            let mut out = Vec::new();
            reply(&mut out, 421, "4.4.2 the session lasted too long, closing");
            let _ = stream.write_all(&out).await;
            Ok(())
        }
    }
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mailbox: &dyn Mailbox,
    config: &SmtpConfig,
) -> io::Result<()> {
    let mut out = Vec::new();
    reply(&mut out, 220, &format!("{} Updraft ESMTP ready", config.hostname));
    stream.write_all(&out).await?;

    let mut requests = RequestReceiver::default();
    let mut phase = Phase::Commands;
    let mut envelope = Envelope::default();
    let mut message = Vec::new();
    // The command being received, for what the parser does not say (an overflowing
    // SIZE); a line longer than this is refused by the parser first.
    let mut line: Vec<u8> = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match tokio::time::timeout(config.idle_timeout, stream.read(&mut buffer)).await {
            Ok(read) => read?,
            Err(_) => {
                out.clear();
                reply(&mut out, 421, "4.4.2 idle for too long, closing");
                let _ = stream.write_all(&out).await;
                return Ok(());
            }
        };
        if read == 0 {
            return Ok(());
        }
        out.clear();
        let mut bytes = buffer[..read].iter();
        let mut quit = false;
        loop {
            match &mut phase {
                Phase::Data { receiver, discarding } => {
                    let finished = match discarding {
                        Some(dummy) => dummy.ingest(&mut bytes),
                        None => {
                            let finished = receiver.ingest(&mut bytes, &mut message);
                            if !finished && message.len() > config.max_message_bytes {
                                // Over the limit: read the rest without keeping it.
                                *discarding = Some(DummyDataReceiver::new_data(receiver));
                                message = Vec::new();
                            }
                            finished
                        }
                    };
                    if !finished {
                        break;
                    }
                    if discarding.is_some() || message.len() > config.max_message_bytes {
                        let limit = config.max_message_bytes;
                        reply(&mut out, 552, &format!("5.3.4 the message is larger than the limit of {limit} bytes"));
                    } else {
                        deliver(mailbox, &envelope, &message, &mut out).await;
                    }
                    // The next message needs no greeting again.
                    envelope = Envelope { greeted: true, ..Envelope::default() };
                    message = Vec::new();
                    phase = Phase::Commands;
                }
                Phase::Commands => match ingest_command(&mut requests, &mut bytes, &mut line) {
                    Ok(request) => {
                        envelope.oversized_declaration = declares_overflowing_size(&line);
                        line.clear();
                        match command(mailbox, config, request, &mut envelope, &mut out) {
                            Next::Continue => {}
                            Next::Data => {
                                phase = Phase::Data { receiver: DataReceiver::new(), discarding: None };
                                message.clear();
                            }
                            Next::Quit => {
                                quit = true;
                                break;
                            }
                        }
                    }
                    Err(Error::NeedsMoreData { .. }) => break,
                    Err(Error::UnknownCommand) => reply(&mut out, 500, "5.5.1 unknown command"),
                    Err(Error::InvalidSenderAddress) => reply(&mut out, 501, "5.1.7 invalid sender address"),
                    Err(Error::InvalidRecipientAddress) => reply(&mut out, 501, "5.1.3 invalid recipient address"),
                    Err(Error::ResponseTooLong) => reply(&mut out, 500, "5.5.6 line too long"),
                    Err(Error::SyntaxError { syntax }) => reply(&mut out, 501, &format!("5.5.4 syntax: {syntax}")),
                    Err(Error::InvalidParameter { param }) => {
                        reply(&mut out, 501, &format!("5.5.4 invalid parameter {param}"))
                    }
                    Err(Error::UnsupportedParameter { param }) => {
                        reply(&mut out, 555, &format!("5.5.4 unsupported parameter {param}"))
                    }
                    Err(_) => reply(&mut out, 501, "5.5.4 invalid command"),
                },
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
        }
        if quit {
            return Ok(());
        }
    }
}

enum Next {
    Continue,
    Data,
    Quit,
}

fn command(
    mailbox: &dyn Mailbox,
    config: &SmtpConfig,
    request: Request<String>,
    envelope: &mut Envelope,
    out: &mut Vec<u8>,
) -> Next {
    match request {
        Request::Ehlo { .. } => {
            *envelope = Envelope { greeted: true, ..Envelope::default() };
            let mut ehlo = EhloResponse::new(config.hostname.as_str());
            ehlo.capabilities = EXT_PIPELINING | EXT_8BIT_MIME | EXT_SIZE | EXT_ENHANCED_STATUS_CODES;
            ehlo.size = config.max_message_bytes;
            // Writing to a Vec cannot fail.
            let _ = ehlo.write(&mut *out);
        }
        Request::Helo { .. } | Request::Lhlo { .. } => {
            *envelope = Envelope { greeted: true, ..Envelope::default() };
            reply(out, 250, &config.hostname);
        }
        Request::Mail { from } => {
            if !envelope.greeted {
                reply(out, 503, "5.5.1 say EHLO or HELO first");
            } else if envelope.oversized_declaration {
                let limit = config.max_message_bytes;
                reply(out, 552, &format!("5.3.4 the declared SIZE is larger than the limit of {limit} bytes"));
            } else if envelope.from.is_some() {
                reply(out, 503, "5.5.1 a message is already started; RSET first");
            } else if from.size > config.max_message_bytes {
                let limit = config.max_message_bytes;
                reply(out, 552, &format!("5.3.4 the message is larger than the limit of {limit} bytes"));
            } else {
                envelope.from = Some(from.address);
                reply(out, 250, "2.1.0 sender ok");
            }
        }
        Request::Rcpt { to } => {
            if envelope.from.is_none() {
                reply(out, 503, "5.5.1 MAIL FROM first");
            } else if envelope.to.len() >= MAX_RECIPIENTS {
                reply(out, 452, "4.5.3 too many recipients");
            } else if !mailbox.accepts(&to.address) {
                reply(out, 550, &format!("5.1.1 no function receives mail for <{}>", to.address));
            } else {
                envelope.to.push(to.address);
                reply(out, 250, "2.1.5 recipient ok");
            }
        }
        Request::Data => {
            if envelope.to.is_empty() {
                reply(out, 503, "5.5.1 no valid recipients");
            } else {
                reply(out, 354, "end the message with <CRLF>.<CRLF>");
                return Next::Data;
            }
        }
        Request::Bdat { .. } => reply(out, 502, "5.5.1 BDAT is not supported; use DATA"),
        Request::Rset => {
            *envelope = Envelope { greeted: envelope.greeted, ..Envelope::default() };
            reply(out, 250, "2.0.0 reset");
        }
        Request::Noop { .. } => reply(out, 250, "2.0.0 ok"),
        Request::Quit => {
            reply(out, 221, "2.0.0 bye");
            return Next::Quit;
        }
        Request::StartTls => reply(out, 502, "5.5.1 STARTTLS is not offered; terminate TLS in front of Updraft"),
        Request::Auth { .. } => reply(out, 502, "5.5.1 AUTH is not offered"),
        Request::Vrfy { .. } => reply(out, 252, "2.5.2 cannot verify, but will try"),
        _ => reply(out, 502, "5.5.1 command not implemented"),
    }
    Next::Continue
}

/// Parses the message and stores an event for each function claiming a recipient;
/// answers `250` only once they are committed.
async fn deliver(mailbox: &dyn Mailbox, envelope: &Envelope, raw: &[u8], out: &mut Vec<u8>) {
    let from = envelope.from.clone().unwrap_or_default();
    let Some(event) = parse_message(raw, &from, &envelope.to) else {
        reply(out, 554, "5.6.0 the message has no headers");
        return;
    };
    // Each function sees the envelope recipients it claims.
    // The event must fit an asynchronous payload even with its text cut: a message
    // whose headers alone are too large is refused, not stored.
    let mut largest = event.clone();
    largest["envelope"]["to"] = serde_json::json!(envelope.to);
    let size = fit(largest).to_string().len();
    if size > MAX_EVENT_BYTES {
        let message = format!(
            "5.3.4 the message's headers and parts make an event of {size} bytes even with its text cut, over the \
             limit of {MAX_EVENT_BYTES}"
        );
        reply(out, 552, &message);
        return;
    }
    let payload = |to: &[String]| {
        let mut event = event.clone();
        event["envelope"]["to"] = serde_json::json!(to);
        fit(event).to_string().into_bytes()
    };
    match mailbox.deliver(&from, &envelope.to, &payload).await {
        Ok(ids) if !ids.is_empty() => reply(out, 250, &format!("2.0.0 queued as {}", ids.join(","))),
        // The functions went away between RCPT and the end of DATA.
        Ok(_) => reply(out, 550, "5.1.1 no function receives mail for these recipients any more"),
        Err(error) => {
            tracing::error!(%error, "cannot store received mail");
            reply(out, 451, "4.3.0 cannot store the message now; try again later");
        }
    }
}

/// The most an email event may weigh: an asynchronous event's payload limit.
const MAX_EVENT_BYTES: usize = 1 << 20;

/// The event within the async payload limit: the bodies are cut (and `truncated` set)
/// when the message's text and HTML would make it larger.
fn fit(mut event: serde_json::Value) -> serde_json::Value {
    for field in ["html", "text"] {
        let size = event.to_string().len();
        if size <= MAX_EVENT_BYTES {
            break;
        }
        if let Some(body) = event[field].as_str() {
            let keep = body.len().saturating_sub(size - MAX_EVENT_BYTES + 1024);
            let cut = body[..body.floor_char_boundary(keep)].to_owned();
            event[field] = serde_json::Value::String(cut);
            event["truncated"] = serde_json::Value::Bool(true);
        }
    }
    event
}

/// Feeds the parser, keeping the bytes of the command being received in `line` (up to
/// 4 KiB; cleared when the parser refuses one).
fn ingest_command(
    requests: &mut RequestReceiver,
    bytes: &mut std::slice::Iter<'_, u8>,
    line: &mut Vec<u8>,
) -> Result<Request<String>, Error> {
    let before = bytes.as_slice();
    let result = requests.ingest(bytes).map(|request| request.into_owned());
    let taken = before.len() - bytes.as_slice().len();
    if line.len() < 4096 {
        line.extend_from_slice(&before[..taken.min(4096 - line.len())]);
    }
    if matches!(result, Err(ref error) if !matches!(error, Error::NeedsMoreData { .. })) {
        line.clear();
    }
    result
}

/// Whether a `MAIL` line declares a `SIZE` too large for any number to hold: the
/// parser saturates such a size and may then wrap it to a small one.
fn declares_overflowing_size(line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line).to_ascii_uppercase();
    text.split_ascii_whitespace().filter_map(|word| word.strip_prefix("SIZE=")).any(|digits| {
        digits.bytes().all(|b| b.is_ascii_digit()) && !digits.is_empty() && digits.parse::<u64>().is_err()
    })
}

fn reply(out: &mut Vec<u8>, code: u16, text: &str) {
    out.extend_from_slice(format!("{code} {text}\r\n").as_bytes());
}
