//! A guest that returns from its handler without ever sending a response.

struct Silent;

impl wasip2::exports::http::incoming_handler::Guest for Silent {
    fn handle(_request: wasip2::http::types::IncomingRequest, _outparam: wasip2::http::types::ResponseOutparam) {
        println!("not answering");
    }
}

wasip2::http::proxy::export!(Silent with_types_in wasip2);

fn main() {}
