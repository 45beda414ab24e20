//! A guest that answers in pieces, chunked (no `content-length`), waiting between them
//! on a latch (a `GET` of the `latch` URL that its server answers when the test says):
//! `/chunks?latch=U` writes `first`, waits, writes `last`; `/trap?latch=U` writes
//! `partial`, waits, then traps; `/many?chunks=N&size=S` writes N chunks of S bytes
//! (one chunk with its `content-length`).

#![no_main]

use std::io::Write as _;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};

wasip2::http::proxy::export!(Stream);

struct Stream;

impl wasip2::exports::http::incoming_handler::Guest for Stream {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_and_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_and_query.split_once('?').unwrap_or((&path_and_query, ""));
        let param = |key: &str| {
            query.split('&').find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v.to_owned()))
        };
        let chunks: usize = param("chunks").and_then(|n| n.parse().ok()).unwrap_or(1);
        let size: usize = param("size").and_then(|n| n.parse().ok()).unwrap_or(1024);
        let mut fields = vec![("content-type".to_owned(), b"text/plain".to_vec())];
        if path.ends_with("/many") && chunks == 1 {
            fields.push(("content-length".to_owned(), size.to_string().into_bytes()));
        }
        let headers = Fields::from_list(&fields).unwrap();
        let response = OutgoingResponse::new(headers);
        let body = response.body().unwrap();
        ResponseOutparam::set(response_out, Ok(response));
        let mut out = body.write().unwrap();
        match path.rsplit('/').next().unwrap_or("") {
            "chunks" => {
                out.write_all(b"first\n").unwrap();
                out.flush().unwrap();
                wait(&param("latch").unwrap_or_default());
                out.write_all(b"last\n").unwrap();
            }
            "trap" => {
                out.write_all(b"partial\n").unwrap();
                out.flush().unwrap();
                wait(&param("latch").unwrap_or_default());
                panic!("trapped mid-stream");
            }
            _ => {
                for _ in 0..chunks {
                    out.write_all(&vec![b'x'; size]).unwrap();
                    out.flush().unwrap();
                }
            }
        }
        out.flush().unwrap();
        drop(out);
        OutgoingBody::finish(body, None).unwrap();
    }
}

/// A blocking `GET` of `url` (`http://HOST:PORT/PATH`), its answer read and dropped.
fn wait(url: &str) {
    let rest = url.strip_prefix("http://").expect("an http:// latch url");
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).unwrap();
    request.set_scheme(Some(&Scheme::Http)).unwrap();
    request.set_authority(Some(authority)).unwrap();
    request.set_path_with_query(Some(&path)).unwrap();
    OutgoingBody::finish(request.body().unwrap(), None).unwrap();
    let pending = outgoing_handler::handle(request, None).expect("the latch is allowed");
    pending.subscribe().block();
    let response = pending.get().unwrap().unwrap().expect("the latch answers");
    let incoming = response.consume().unwrap();
    let stream = incoming.stream().unwrap();
    while stream.blocking_read(64 * 1024).is_ok() {}
}
