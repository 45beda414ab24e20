"""A wasi:http function in Python: componentize-py turns this file into a WebAssembly
component, which Updraft runs in a fresh instance per request."""

import json
from urllib.parse import parse_qs, urlsplit

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.types import Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        query = parse_qs(urlsplit(request.path_with_query() or "/").query)
        name = query.get("name", ["world"])[0]
        print(f"greeting {name}")
        body_bytes = json.dumps({"message": f"Hello, {name}!", "language": "python"}).encode()
        response = OutgoingResponse(Fields.from_list([("content-type", b"application/json")]))
        response.set_status_code(200)
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            stream.blocking_write_and_flush(body_bytes)
        OutgoingBody.finish(body, None)
