//! A received message as the event functions get: the parsed headers, bodies and
//! attachment names and sizes (not their contents), as JSON.

use mail_parser::{Address, MessageParser, MimeHeaders};
use serde_json::{Map, Value, json};

/// The event for a message: `{"envelope": {"from", "to"}, "messageId", "date", "from",
/// "to", "cc", "replyTo", "subject", "text", "html", "headers", "attachments"}`.
/// `None` when the bytes hold no message headers at all.
pub fn parse_message(raw: &[u8], envelope_from: &str, envelope_to: &[String]) -> Option<Value> {
    let message = MessageParser::default().parse(raw)?;
    let addresses = |address: Option<&Address<'_>>| -> Value {
        address
            .map(|address| {
                address.iter().map(|addr| json!({ "name": addr.name(), "address": addr.address() })).collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into()
    };
    let mut headers = Map::new();
    for (name, value) in message.headers_raw() {
        let value = Value::String(value.trim().to_owned());
        match headers.get_mut(name) {
            Some(Value::Array(values)) => values.push(value),
            _ => {
                headers.insert(name.to_owned(), Value::Array(vec![value]));
            }
        }
    }
    let attachments: Vec<Value> = message
        .attachments()
        .map(|part| {
            let content_type = part
                .content_type()
                .map(|kind| match kind.subtype() {
                    Some(subtype) => format!("{}/{subtype}", kind.ctype()),
                    None => kind.ctype().to_owned(),
                })
                .unwrap_or_else(|| "application/octet-stream".to_owned());
            json!({ "filename": part.attachment_name(), "contentType": content_type, "size": part.len() })
        })
        .collect();
    Some(json!({
        "envelope": { "from": envelope_from, "to": envelope_to },
        "messageId": message.message_id(),
        "date": message.date().map(|date| date.to_rfc3339()),
        "from": addresses(message.from()),
        "to": addresses(message.to()),
        "cc": addresses(message.cc()),
        "replyTo": addresses(message.reply_to()),
        "subject": message.subject(),
        "text": message.body_text(0),
        "html": message.body_html(0),
        "headers": headers,
        "attachments": attachments,
        "size": raw.len(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multipart_message_becomes_its_parts() {
        let raw = "From: Ada <ada@example.com>\r\nTo: signup@updraft.test\r\nSubject: Hello\r\n\
                   Message-ID: <1@example.com>\r\nMIME-Version: 1.0\r\n\
                   Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
                   --b\r\nContent-Type: text/plain\r\n\r\nhi there\r\n\
                   --b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"cv.pdf\"\r\n\
                   Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n--b--\r\n";
        let event = parse_message(raw.as_bytes(), "bounce@example.com", &["signup@updraft.test".to_owned()]).unwrap();
        assert_eq!(event["subject"], "Hello");
        assert_eq!(event["from"][0]["address"], "ada@example.com");
        assert_eq!(event["from"][0]["name"], "Ada");
        assert_eq!(event["text"].as_str().unwrap().trim(), "hi there");
        assert_eq!(event["attachments"][0]["filename"], "cv.pdf");
        assert_eq!(event["attachments"][0]["contentType"], "application/pdf");
        assert_eq!(event["attachments"][0]["size"], 8);
        assert_eq!(event["envelope"]["from"], "bounce@example.com");
        assert_eq!(event["headers"]["Subject"][0], "Hello");
    }
}
