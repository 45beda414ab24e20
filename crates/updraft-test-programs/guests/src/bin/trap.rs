//! A guest that panics, which traps its instance.

use wstd::http::{Body, Error, Request, Response};

#[wstd::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>, Error> {
    eprintln!("about to fail");
    panic!("this function always fails");
}
