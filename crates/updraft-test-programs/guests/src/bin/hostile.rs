//! A hostile guest for the escape tests: each path is an attempt on the host, and the
//! answer says what happened (`ok: ...` or `refused: ...`), never trapping on purpose
//! except where the attempt is the trap.
//!
//! `/read?path=P` reads a file; `/list?path=P` lists a folder; `/env` lists every
//! environment variable's name; `/tcp?addr=A` opens a TCP connection;
//! `/udp?addr=A` sends a datagram; `/fetch?url=U` makes an HTTP request;
//! `/resolve?host=H` looks a name up; `/recurse` recurses without end;
//! `/flood?lines=N` prints N lines; `/grow?mib=N` grows memory by N MiB.

use std::io::Write;

use wstd::http::{Body, Client, Error, Request, Response};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let param = |key: &str| {
        query
            .split('&')
            .find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v.to_owned()))
            .unwrap_or_default()
    };
    // The attempt is the path's last segment, wherever the function is routed.
    let attempt = format!("/{}", path.rsplit('/').next().unwrap_or_default());
    let outcome = match attempt.as_str() {
        "/read" => std::fs::read(param("path")).map(|bytes| format!("{} bytes", bytes.len())).map_err(|e| e.to_string()),
        "/list" => std::fs::read_dir(param("path"))
            .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path().display().to_string()).collect::<Vec<_>>().join(","))
            .map_err(|e| e.to_string()),
        "/env" => Ok(std::env::vars().map(|(name, _)| name).collect::<Vec<_>>().join(",")),
        "/tcp" => std::net::TcpStream::connect(param("addr")).map(|_| "connected".to_owned()).map_err(|e| e.to_string()),
        "/udp" => std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|socket| socket.send_to(b"x", param("addr")))
            .map(|sent| format!("sent {sent}"))
            .map_err(|e| e.to_string()),
        "/resolve" => std::net::ToSocketAddrs::to_socket_addrs(&(param("host").as_str(), 80))
            .map(|found| found.map(|a| a.to_string()).collect::<Vec<_>>().join(","))
            .map_err(|e| e.to_string()),
        "/fetch" => {
            let outbound = Request::get(param("url").as_str()).body(Body::empty())?;
            match Client::new().send(outbound).await {
                Ok(response) => Ok(format!("status {}", response.status().as_u16())),
                Err(error) => Err(format!("{error:?}")),
            }
        }
        "/recurse" => Ok(format!("depth {}", recurse(0))),
        "/flood" => {
            let lines: u64 = param("lines").parse().unwrap_or(1);
            let mut stdout = std::io::stdout().lock();
            for i in 0..lines {
                let _ = writeln!(stdout, "flood line {i} ................................................");
            }
            Ok(format!("printed {lines}"))
        }
        "/grow" => {
            let mib: usize = param("mib").parse().unwrap_or(1);
            let mut blocks = Vec::new();
            for _ in 0..mib {
                blocks.push(vec![1u8; 1 << 20]);
            }
            Ok(format!("grew {}", blocks.len()))
        }
        _ => Err(format!("no attempt at {path}")),
    };
    let body = match outcome {
        Ok(what) => format!("ok: {what}"),
        Err(why) => format!("refused: {why}"),
    };
    Ok(Response::builder().header("content-type", "text/plain").body(Body::from(body))?)
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    if frame[0] == u64::MAX { frame[1] } else { recurse(depth + 1) + frame[63] }
}
