"""Updraft runtime bootstrap for Python handlers.

Runs as ``python3 /var/runtime/bootstrap.py``. It is the client side of the
Lambda Runtime API (version 2018-06-01): it loads the handler named by
``_HANDLER`` ("module.function"), then loops forever fetching an event from
``/runtime/invocation/next`` and posting the handler's result or error back.
The handler sees the same context object, and callers see the same error
bodies and ``Runtime.*`` error types, as on AWS's Python runtime.

Start-up time is part of every cold start, so this file imports only what the
first invocation needs (``json``, ``os``, ``sys``, ``time``, ``_socket``).
Modules used only when something goes wrong (``linecache``) are imported there.
"""

import _socket  # the C half of `socket`; see _RuntimeApi for why
import json
import os
import sys
import time

_API_PREFIX = "/2018-06-01/runtime"
_USER_AGENT = "updraft-python/%d.%d.%d" % sys.version_info[:3]

# Read once, by _read_environment, when the function is known: at start, or in a
# pre-started sandbox when the platform assigns it a function.
_FUNCTION_NAME = _FUNCTION_VERSION = _MEMORY_SIZE = _LOG_GROUP_NAME = _LOG_STREAM_NAME = None


def _read_environment():
    global _FUNCTION_NAME, _FUNCTION_VERSION, _MEMORY_SIZE, _LOG_GROUP_NAME, _LOG_STREAM_NAME
    _FUNCTION_NAME = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    _FUNCTION_VERSION = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
    # A string, as on AWS (the Python runtime never converts it to an int).
    _MEMORY_SIZE = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    _LOG_GROUP_NAME = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
    _LOG_STREAM_NAME = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")


def _await_assignment(api):
    """In a sandbox Updraft started ahead of need (interpreter warm, no function yet):
    wait for the function's environment, its bundle now mounted at /var/task."""
    status, _, body = api.request("GET", _API_PREFIX + "/updraft/assignment")
    if status != 200:
        sys.stderr.write("updraft runtime: no function was assigned: %s\n" % _describe(status, body))
        sys.exit(1)
    os.environ.update(json.loads(body)["env"])
    # The working folder was the empty /var/task the bundle is now mounted over.
    os.chdir(os.environ.get("LAMBDA_TASK_ROOT") or "/var/task")


# --------------------------------------------------------------------------
# Runtime API transport
# --------------------------------------------------------------------------


class _RuntimeApi:
    """One kept-alive HTTP/1.1 connection to the Runtime API.

    This is deliberately not ``http.client``: importing that module pulls in
    ``email.parser``, ``ssl`` and more, about 18 ms when measured on a 2-vCPU
    Xeon, against about 7 ms for everything this file does between
    interpreter start and its first ``/next``. ``socket`` is skipped for the
    same reason (about 2 ms, for enum wrappers and ``makefile``, unused here). The peer is the platform's own
    Runtime API, so a small subset of HTTP/1.1 is enough: requests with a
    Content-Length body, responses delimited by Content-Length, chunked
    encoding or end of connection, interim 1xx responses and
    ``Connection: close``.
    """

    def __init__(self, address):
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError("AWS_LAMBDA_RUNTIME_API must be host:port, not %r" % address)
        if host.startswith("[") and host.endswith("]"):  # IPv6 literal
            host = host[1:-1]
        self._host = host
        self._port = int(port)
        self._fixed_headers = ("Host: %s\r\nUser-Agent: %s\r\n" % (address, _USER_AGENT)).encode("latin-1")
        self._sock = None
        self._buf = bytearray()  # received bytes not yet consumed
        self._response_started = False  # any byte of the current response seen?

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf.clear()

    def request(self, method, path, body=None, headers=()):
        """Send a request and return ``(status, headers, body)``.

        Response header names are lower-cased. The body is a bytearray.
        """
        head = bytearray(("%s %s HTTP/1.1\r\n" % (method, path)).encode("latin-1"))
        head += self._fixed_headers
        for name, value in headers:
            head += ("%s: %s\r\n" % (name, value)).encode("latin-1")
        if body is not None:
            head += b"Content-Length: %d\r\n" % len(body)
        head += b"\r\n"

        reused = self._sock is not None
        if not reused:
            self._connect()
        try:
            return self._exchange(head, body)
        except ConnectionError:
            self.close()
            # A kept-alive connection can be closed by the server just as a new
            # request goes out on it. If nothing came back, the request was not
            # processed: retry once on a fresh connection. Anything else is fatal.
            if not reused or self._response_started:
                raise
        self._connect()
        return self._exchange(head, body)

    def _addresses(self):
        # An IP literal (the usual case) is used as is: even for a literal,
        # the first getaddrinfo() call in a process costs 5-10 ms (resolver
        # set-up), a large share of the start-up budget.
        for family in (_socket.AF_INET, _socket.AF_INET6):
            try:
                _socket.inet_pton(family, self._host)
            except OSError:
                continue
            return [(family, _socket.SOCK_STREAM, 0, "", (self._host, self._port))]
        return _socket.getaddrinfo(self._host, self._port, 0, _socket.SOCK_STREAM)

    def _connect(self):
        error = None
        for family, kind, proto, _, address in self._addresses():
            sock = _socket.socket(family, kind, proto)
            try:
                # Requests and responses are single small writes; never let
                # Nagle's algorithm hold one back waiting for an ACK.
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
                sock.connect(address)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            self._sock = sock
            self._buf.clear()
            return
        raise error or OSError("cannot resolve %s" % self._host)

    def _exchange(self, head, body):
        self._response_started = False
        if body and len(body) > 65536:
            # Large bodies go in a second write rather than being copied.
            self._sock.sendall(head)
            self._sock.sendall(body)
        else:
            self._sock.sendall(head + body if body else head)
        return self._read_response()

    def _read_response(self):
        while True:
            end = self._buf.find(b"\r\n\r\n")
            while end < 0:
                scanned = len(self._buf)
                self._fill()
                end = self._buf.find(b"\r\n\r\n", max(0, scanned - 3))
            lines = self._buf[:end].decode("latin-1").split("\r\n")
            del self._buf[: end + 4]
            version, status = lines[0].split(" ", 2)[:2]
            status = int(status)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if not 100 <= status < 200:
                break
            # An interim response (e.g. 100 Continue); the real one follows.

        keep_alive = headers.get("connection", "").lower() != "close" and version != "HTTP/1.0"
        if status in (204, 304):
            body = bytearray()
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        else:
            body = self._read_until_closed()
            keep_alive = False
        if not keep_alive:
            self.close()
        return status, headers, body

    def _fill(self):
        data = self._sock.recv(65536)
        if not data:
            raise ConnectionResetError("Runtime API closed the connection")
        self._response_started = True
        self._buf += data

    def _read_line(self):
        end = self._buf.find(b"\r\n")
        while end < 0:
            self._fill()
            end = self._buf.find(b"\r\n")
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    def _read_exact(self, size):
        # Receive straight into the final buffer: events can be megabytes.
        out = bytearray(size)
        have = min(size, len(self._buf))
        out[:have] = self._buf[:have]
        del self._buf[:have]
        with memoryview(out) as view:
            while have < size:
                got = self._sock.recv_into(view[have:])
                if not got:
                    raise ConnectionResetError("Runtime API closed the connection mid-body")
                have += got
        return out

    def _read_chunked(self):
        body = bytearray()
        while True:
            size = int(self._read_line().split(b";", 1)[0], 16)
            if size == 0:
                while self._read_line():  # trailer fields, then an empty line
                    pass
                return body
            body += self._read_exact(size)
            self._read_line()  # the CRLF that ends each chunk

    def _read_until_closed(self):
        body = bytearray(self._buf)
        self._buf.clear()
        while True:
            data = self._sock.recv(65536)
            if not data:
                return body
            body += data


_URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _quote(segment):
    """Percent-encode one URL path segment (request ids are normally UUIDs)."""
    if _URL_SAFE.issuperset(segment):
        return segment
    return "".join(c if c in _URL_SAFE else "".join("%%%02X" % b for b in c.encode()) for c in segment)


def _header_value(text):
    """Make text safe for an HTTP header value: printable ASCII only."""
    value = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if " " <= c <= "~" else "?" for c in value)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class _Fault(Exception):
    """A failure detected by the runtime itself, reported with a Runtime.* type."""

    def __init__(self, error_type, message, stack_trace=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack_trace = stack_trace or []


def _error_body(error_type, message, stack_trace, request_id=""):
    # Same keys, in the same order, as AWS's Python runtime.
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack_trace,
    }


def _exception_error_body(exc, request_id=""):
    try:
        message = str(exc)
    except Exception:
        message = "<exception str() failed>"
    return _error_body(type(exc).__name__, message, _format_frames(exc.__traceback__), request_id)


def _format_frames(tb):
    """Format a traceback as AWS's Python runtime does: one string per frame,
    ``'  File "f", line N, in name\\n    source\\n'``, leaving out the runtime's
    own frames (this file and the import machinery) at the outer end."""
    import linecache  # only needed when something has gone wrong

    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append((code.co_filename, tb.tb_lineno, code.co_name, tb.tb_frame.f_globals))
        tb = tb.tb_next
    first = 0
    while first < len(frames) and (
        frames[first][0] == __file__ or frames[first][0].startswith("<frozen importlib")
    ):
        first += 1
    if first < len(frames):  # if every frame is ours, show them all
        frames = frames[first:]

    formatted = []
    for filename, lineno, name, module_globals in frames:
        entry = '  File "%s", line %s, in %s\n' % (filename, lineno, name)
        source = linecache.getline(filename, lineno or 0, module_globals).strip()
        if source:
            entry += "    %s\n" % source
        formatted.append(entry)
    return formatted


def _log_error(error):
    """Print an error the way AWS's Python runtime logs it."""
    line = "[ERROR]"
    if error["errorType"]:
        line += " " + error["errorType"] + (":" if error["errorMessage"] else "")
    if error["errorMessage"]:
        line += " " + error["errorMessage"]
    lines = [line, "Traceback (most recent call last):"]
    for frame in error["stackTrace"]:
        lines.extend(frame.splitlines())
    sys.stderr.write("\n".join(lines) + "\n")


def _flush_output():
    # The platform attributes output to an invocation by when it arrives
    # relative to the response, so nothing may be left in a buffer.
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                stream.flush()
            except Exception:
                pass


# --------------------------------------------------------------------------
# Handler loading
# --------------------------------------------------------------------------


def _load_handler(spec):
    """Import the handler named ``module.function``; raise _Fault on the
    failures that AWS reports with a Runtime.* type."""
    try:
        module_name, function_name = spec.rsplit(".", 1)
    except ValueError as exc:
        raise _Fault("Runtime.MalformedHandlerName", "Bad handler '%s': %s" % (spec, exc)) from None
    if not module_name:
        raise _Fault("Runtime.MalformedHandlerName", "Bad handler '%s': empty module name" % spec)
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise _Fault(
            "Runtime.BuiltInModuleConflict",
            "Cannot use built-in module %s as a handler module" % module_name,
        )

    # "pkg/mod.fn" is accepted as a spelling of "pkg.mod.fn".
    import_name = module_name.replace("/", ".")
    try:
        __import__(import_name)
        module = sys.modules[import_name]
    except ImportError as exc:
        raise _Fault(
            "Runtime.ImportModuleError", "Unable to import module '%s': %s" % (module_name, exc)
        ) from None
    except SyntaxError as exc:
        frame = '  File "%s", line %s\n    %s\n' % (exc.filename, exc.lineno, (exc.text or "").strip())
        raise _Fault(
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module '%s': %s" % (module_name, exc),
            [frame],
        ) from None

    try:
        return getattr(module, function_name)
    except AttributeError:
        raise _Fault(
            "Runtime.HandlerNotFound",
            "Handler '%s' missing on module '%s'" % (function_name, module_name),
        ) from None


# --------------------------------------------------------------------------
# Context object (attribute names and shapes follow AWS's Python runtime)
# --------------------------------------------------------------------------


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, fields):
        self.cognito_identity_id = fields.get("cognitoIdentityId")
        self.cognito_identity_pool_id = fields.get("cognitoIdentityPoolId")

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.cognito_identity_id,
            self.cognito_identity_pool_id,
        )


class Client:
    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name")

    def __init__(self, fields):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    def __repr__(self):
        return "Client([%s])" % ",".join("%s=%s" % (n, getattr(self, n)) for n in self.__slots__)


class ClientContext:
    __slots__ = ("custom", "env", "client")

    def __init__(self, fields):
        self.custom = fields.get("custom")
        self.env = fields.get("env")
        client = fields.get("client")
        self.client = Client(client) if isinstance(client, dict) else client

    def __repr__(self):
        return "ClientContext([custom=%s,env=%s,client=%s])" % (self.custom, self.env, self.client)


class LambdaContext:
    def __init__(self, request_id, deadline_ms, invoked_function_arn, client_context, identity, tenant_id):
        self.aws_request_id = request_id
        self.function_name = _FUNCTION_NAME
        self.function_version = _FUNCTION_VERSION
        self.memory_limit_in_mb = _MEMORY_SIZE
        self.invoked_function_arn = invoked_function_arn
        self.log_group_name = _LOG_GROUP_NAME
        self.log_stream_name = _LOG_STREAM_NAME
        self.client_context = client_context
        self.identity = identity
        self.tenant_id = tenant_id
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        remaining = self._deadline_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, message):
        sys.stdout.write(str(message))

    def __repr__(self):
        fields = (
            "aws_request_id", "log_group_name", "log_stream_name", "function_name",
            "memory_limit_in_mb", "function_version", "invoked_function_arn",
            "client_context", "identity", "tenant_id",
        )
        return "LambdaContext([%s])" % ",".join("%s=%s" % (f, getattr(self, f)) for f in fields)


def _parse_json_header(value, what):
    try:
        return json.loads(value)
    except ValueError as exc:
        message = "Unable to parse %s JSON: %s" % (what, exc)
        raise _Fault("Runtime.LambdaContextUnmarshalError", message) from None


def _make_context(request_id, headers):
    client_context = None
    raw = headers.get("lambda-runtime-client-context")
    if raw:
        fields = _parse_json_header(raw, "Client Context")
        client_context = ClientContext(fields) if isinstance(fields, dict) else None

    # Always an object, with None fields when the invoke carried no identity.
    raw = headers.get("lambda-runtime-cognito-identity")
    fields = _parse_json_header(raw, "Cognito Identity") if raw else None
    identity = CognitoIdentity(fields if isinstance(fields, dict) else {})

    try:
        deadline_ms = int(headers.get("lambda-runtime-deadline-ms", "0"))
    except ValueError:
        deadline_ms = 0
    return LambdaContext(
        request_id,
        deadline_ms,
        headers.get("lambda-runtime-invoked-function-arn"),
        client_context,
        identity,
        headers.get("lambda-runtime-aws-tenant-id"),
    )


# --------------------------------------------------------------------------
# Event and result encoding
# --------------------------------------------------------------------------


def _unmarshal(body, content_type):
    # Events are JSON unless the platform says otherwise; other content types
    # reach the handler as bytes, as on AWS.
    if content_type and content_type.split(";", 1)[0].strip().lower() != "application/json":
        return bytes(body)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise _Fault("Runtime.UnmarshalError", "Unable to unmarshal input: %s" % exc) from None


def _json_default(value):
    # AWS's runtime writes decimal.Decimal (what boto3 returns for DynamoDB
    # numbers) as a JSON number. The stdlib encoder cannot emit raw number
    # text, so integral values become int and the rest float.
    decimal = sys.modules.get("decimal")  # no Decimal can exist unless imported
    if decimal is not None and isinstance(value, decimal.Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


_ENCODER = json.JSONEncoder(default=_json_default)  # json.dumps' settings plus Decimal


def _marshal(result):
    """Return (body bytes, content type) for a handler's return value."""
    if isinstance(result, bytes):
        return result, "application/unknown"
    try:
        return _ENCODER.encode(result).encode(), "application/json"
    except Exception as exc:
        raise _Fault("Runtime.MarshalError", "Unable to marshal response: %s" % exc) from None


# --------------------------------------------------------------------------
# Main loop
# --------------------------------------------------------------------------


def _describe(status, body):
    return "HTTP %d %s" % (status, bytes(body[:1000]).decode("utf-8", "replace"))


def _check_posted(status, body, what):
    """Log a rejected post. 4xx concerns only this invocation (e.g. 413 for
    an oversized response) so the loop goes on; 5xx means the environment is
    broken and the API asks the runtime to exit."""
    if status < 300:
        return
    sys.stderr.write("updraft runtime: %s was rejected: %s\n" % (what, _describe(status, body)))
    if status >= 500:
        _flush_output()
        sys.exit(1)


def _invoke(api, handler, headers, body):
    request_id = headers.get("lambda-runtime-aws-request-id")
    if not request_id:
        sys.stderr.write("updraft runtime: /next response has no Lambda-Runtime-Aws-Request-Id\n")
        sys.exit(1)

    trace_id = headers.get("lambda-runtime-trace-id")
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)

    try:
        context = _make_context(request_id, headers)
        event = _unmarshal(body, headers.get("content-type"))
        result = handler(event, context)
        payload, content_type = _marshal(result)
    except _Fault as fault:
        error = _error_body(fault.error_type, fault.message, fault.stack_trace, request_id)
    except Exception as exc:  # BaseException (SystemExit, ...) ends the runtime, as on AWS
        error = _exception_error_body(exc, request_id)
    else:
        _flush_output()
        status, _, reply = api.request(
            "POST",
            "%s/invocation/%s/response" % (_API_PREFIX, _quote(request_id)),
            payload,
            (("Content-Type", content_type),),
        )
        _check_posted(status, reply, "response for " + request_id)
        return

    _log_error(error)
    _flush_output()
    # The body names the exception class; the header is always "Unhandled",
    # which is what AWS's Python runtime sends for invocation errors.
    status, _, reply = api.request(
        "POST",
        "%s/invocation/%s/error" % (_API_PREFIX, _quote(request_id)),
        json.dumps(error).encode(),
        (("Content-Type", "application/json"), ("Lambda-Runtime-Function-Error-Type", "Unhandled")),
    )
    _check_posted(status, reply, "error for " + request_id)


def main():
    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        sys.stderr.write("updraft runtime: AWS_LAMBDA_RUNTIME_API is not set\n")
        sys.exit(1)
    try:
        api = _RuntimeApi(address)
    except ValueError as exc:
        sys.stderr.write("updraft runtime: %s\n" % exc)
        sys.exit(1)

    # Line-buffer output (it is block-buffered when it goes to a pipe) so that
    # printed lines survive a timeout kill, as with AWS's unbuffered streams.
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)

    if os.environ.pop("UPDRAFT_DEFERRED", None) == "1":
        _await_assignment(api)
    _read_environment()
    sys.path.insert(0, os.environ.get("LAMBDA_TASK_ROOT") or "/var/task")

    try:
        handler = _load_handler(os.environ.get("_HANDLER", ""))
        error = None
    except _Fault as fault:
        error = _error_body(fault.error_type, fault.message, fault.stack_trace)
    except Exception as exc:
        error = _exception_error_body(exc)
    if error is not None:
        _log_error(error)
        _flush_output()
        status, _, reply = api.request(
            "POST",
            _API_PREFIX + "/init/error",
            json.dumps(error).encode(),
            (
                ("Content-Type", "application/json"),
                ("Lambda-Runtime-Function-Error-Type", _header_value(error["errorType"])),
            ),
        )
        _check_posted(status, reply, "init error")
        sys.exit(1)

    next_path = _API_PREFIX + "/invocation/next"
    while True:
        status, headers, body = api.request("GET", next_path)
        if status != 200:
            sys.stderr.write("updraft runtime: GET /next failed: %s\n" % _describe(status, body))
            sys.exit(1)
        _invoke(api, handler, headers, body)


if __name__ == "__main__":
    try:
        main()
    except OSError as exc:
        # The Runtime API went away (the platform is tearing the sandbox down,
        # or never listened): nothing can be reported, so just say why we stop.
        _flush_output()
        sys.stderr.write("updraft runtime: lost the Runtime API connection: %r\n" % (exc,))
        sys.exit(1)
