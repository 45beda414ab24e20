//! AWS's event stream encoding (`application/vnd.amazon.eventstream`), the framing of
//! Lambda's `InvokeWithResponseStream` answer: each message is a prelude (total length,
//! headers' length, the prelude's CRC32), headers (name, type 7 = string, value), the
//! payload, and the CRC32 of everything before it. The AWS SDKs decode it and check
//! both checksums.

use bytes::{BufMut, Bytes, BytesMut};

/// Header value type 7: a UTF-8 string with a 2-byte length.
const STRING: u8 = 7;

/// One event message of type `event_type` carrying `payload`.
pub(crate) fn event(event_type: &str, content_type: &str, payload: &[u8]) -> Bytes {
    message(&[(":event-type", event_type), (":content-type", content_type), (":message-type", "event")], payload)
}

/// A message with string `headers` and `payload`.
fn message(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut encoded_headers = BytesMut::new();
    for (name, value) in headers {
        // Names are at most 255 bytes and values 65,535: ours are short constants.
        encoded_headers.put_u8(name.len() as u8);
        encoded_headers.put_slice(name.as_bytes());
        encoded_headers.put_u8(STRING);
        encoded_headers.put_u16(value.len() as u16);
        encoded_headers.put_slice(value.as_bytes());
    }
    // Prelude (12) + headers + payload + message CRC (4).
    let total = 12 + encoded_headers.len() + payload.len() + 4;
    let mut message = BytesMut::with_capacity(total);
    message.put_u32(total as u32);
    message.put_u32(encoded_headers.len() as u32);
    let prelude_crc = crc32fast::hash(&message[..8]);
    message.put_u32(prelude_crc);
    message.put_slice(&encoded_headers);
    message.put_slice(payload);
    let message_crc = crc32fast::hash(&message);
    message.put_u32(message_crc);
    message.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes one message as a client does, checking both CRCs.
    fn decode(message: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
        let total = u32::from_be_bytes(message[0..4].try_into().unwrap()) as usize;
        let headers_len = u32::from_be_bytes(message[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, message.len());
        assert_eq!(u32::from_be_bytes(message[8..12].try_into().unwrap()), crc32fast::hash(&message[..8]));
        assert_eq!(
            u32::from_be_bytes(message[total - 4..].try_into().unwrap()),
            crc32fast::hash(&message[..total - 4])
        );
        let mut headers = Vec::new();
        let mut at = 12;
        while at < 12 + headers_len {
            let name_len = message[at] as usize;
            let name = String::from_utf8(message[at + 1..at + 1 + name_len].to_vec()).unwrap();
            at += 1 + name_len;
            assert_eq!(message[at], STRING);
            let value_len = u16::from_be_bytes(message[at + 1..at + 3].try_into().unwrap()) as usize;
            let value = String::from_utf8(message[at + 3..at + 3 + value_len].to_vec()).unwrap();
            at += 3 + value_len;
            headers.push((name, value));
        }
        (headers, message[12 + headers_len..total - 4].to_vec())
    }

    #[test]
    fn an_event_carries_its_type_and_payload_between_checksums() {
        let encoded = event("PayloadChunk", "application/octet-stream", b"\0chunk\xff");
        let (headers, payload) = decode(&encoded);
        assert_eq!(headers[0], (":event-type".to_owned(), "PayloadChunk".to_owned()));
        assert_eq!(headers[2], (":message-type".to_owned(), "event".to_owned()));
        assert_eq!(payload, b"\0chunk\xff");
        let (_, empty) = decode(&event("InvokeComplete", "application/json", b""));
        assert!(empty.is_empty());
    }
}
