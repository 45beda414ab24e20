//! A WASIp3 guest: it exports `wasi:http/handler@0.3.0`, the async handler that one
//! instance may run for several requests at once. Chosen by the path's last segment:
//! `/count` answers `served=N in-flight-max=M`, how many requests this instance has
//! taken and the most it ever ran at once; `/sleep?ms=N` waits N ms (counted in
//! flight), then answers as `/count`; `/echo` answers the request's body; `/env?name=X`
//! answers an environment variable; `/stream?chunks=N` writes N lines with a wait
//! between each; `/spin` computes forever; `/grow?mib=N` holds N MiB; `/trap` traps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;
use wasip3::http::types::{self, ErrorCode};
use wasip3::http_compat::{http_from_wasi_request, http_into_wasi_response};

wasip3::http::service::export!(P3);

static SERVED: AtomicU64 = AtomicU64::new(0);
static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);
static IN_FLIGHT_MAX: AtomicU64 = AtomicU64::new(0);

struct P3;

/// Built as a program for the wasm32-wasip2 target; the host calls only the handler.
fn main() {}

impl wasip3::exports::http::handler::Guest for P3 {
    async fn handle(request: types::Request) -> Result<types::Response, ErrorCode> {
        let served = SERVED.fetch_add(1, Ordering::SeqCst) + 1;
        let request = http_from_wasi_request(request)?;
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or("").to_owned();
        let param = |key: &str| {
            query.split('&').find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v.to_owned()))
        };
        let count = || {
            format!("served={} in-flight-max={}", SERVED.load(Ordering::SeqCst), IN_FLIGHT_MAX.load(Ordering::SeqCst))
        };
        let text = |body: String| http_into_wasi_response(http::Response::new(body));
        println!("p3 request {served} {path}");
        match path.rsplit('/').next().unwrap_or("") {
            "sleep" => {
                let ms: u64 = param("ms").and_then(|n| n.parse().ok()).unwrap_or(0);
                let now = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
                IN_FLIGHT_MAX.fetch_max(now, Ordering::SeqCst);
                wasip3::clocks::monotonic_clock::wait_for(Duration::from_millis(ms).as_nanos() as u64).await;
                IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
                text(count())
            }
            "echo" => {
                let body = request.into_body().collect().await.map_err(|_| ErrorCode::HttpRequestDenied)?;
                http_into_wasi_response(http::Response::new(http_body_util::Full::new(body.to_bytes())))
            }
            "env" => text(std::env::var(param("name").unwrap_or_default()).unwrap_or_else(|_| "<unset>".into())),
            "stream" => {
                let chunks: u64 = param("chunks").and_then(|n| n.parse().ok()).unwrap_or(3);
                let (mut body, body_rx) = wasip3::wit_stream::new();
                let (trailers, trailers_rx) = wasip3::wit_future::new(|| Ok(None));
                let (response, _sent) = types::Response::new(types::Fields::new(), Some(body_rx), trailers_rx);
                wasip3::wit_bindgen::spawn_local(async move {
                    for i in 0..chunks {
                        body.write_all(format!("chunk {i}\n").into_bytes()).await;
                        wasip3::clocks::monotonic_clock::wait_for(20_000_000).await;
                    }
                    drop(body);
                    let _ = trailers.write(Ok(None)).await;
                });
                Ok(response)
            }
            "trap" => std::process::abort(),
            "grow" => {
                let mib: usize = param("mib").and_then(|n| n.parse().ok()).unwrap_or(1);
                let held = std::hint::black_box(vec![1u8; mib << 20]);
                text(format!("held {} MiB", held.len() >> 20))
            }
            "spin" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            _ => text(count()),
        }
    }
}
