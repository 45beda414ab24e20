// Updraft runtime bootstrap for Node.js handlers.
//
// Runs as `node /var/runtime/bootstrap.mjs`. It is the client side of the
// Lambda Runtime API (version 2018-06-01): it loads the handler named by
// _HANDLER ("file.function", file being file.js, file.mjs or file.cjs under
// LAMBDA_TASK_ROOT), then loops forever fetching an event from
// /runtime/invocation/next and posting the handler's result or error back.
// Handlers, the context object, console output and error bodies behave as on
// AWS's Node.js 20 runtime, including callback-style handlers and
// context.callbackWaitsForEmptyEventLoop, and response streaming
// (awslambda.streamifyResponse, awslambda.HttpResponseStream). Only built-in
// modules are used.

import { existsSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { format, types } from 'node:util';

const API_PREFIX = '/2018-06-01/runtime';
const NEXT_PATH = `${API_PREFIX}/invocation/next`;
let TASK_ROOT = process.env.LAMBDA_TASK_ROOT || '/var/task';

// Exit codes used by AWS's runtime: an uncaught exception (which includes a
// failed init) exits 129, an unhandled promise rejection 128.
const EXIT_UNCAUGHT = 129;
const EXIT_UNHANDLED_REJECTION = 128;

// ---------------------------------------------------------------------------
// Runtime API transport: a minimal HTTP/1.1 client over one kept-alive TCP
// connection, Nagle disabled.
//
// Not node:http: its agent, parser and streams cost about 0.3 ms per
// invocation (a GET /next and a POST /response), far more than a small
// handler. The peer is the platform's Runtime API and requests are strictly
// sequential, so a small subset of HTTP/1.1 is enough: requests with a
// Content-Length body; responses delimited by Content-Length, chunked
// encoding or end of connection; interim 1xx responses; Connection: close.
// Response header names are matched case-insensitively (lower-cased keys).
// ---------------------------------------------------------------------------

const [apiHost, apiPort] = parseAddress(process.env.AWS_LAMBDA_RUNTIME_API);
const FIXED_HEADERS = `Host: ${process.env.AWS_LAMBDA_RUNTIME_API}\r\n`
  + `User-Agent: updraft-nodejs/${process.versions.node}\r\n`;

function parseAddress(address) {
  const match = /^\[?([^\]\x00-\x20\x7f]*?)\]?:(\d+)$/.exec(address ?? '');
  if (!match) {
    process.stderr.write(
      `updraft runtime: AWS_LAMBDA_RUNTIME_API must be host:port, not ${JSON.stringify(address)}\n`);
    process.exit(1);
  }
  return [match[1], Number(match[2])];
}

const EMPTY = Buffer.alloc(0);
const HEAD_END = Buffer.from('\r\n\r\n');
const LINE_END = Buffer.from('\r\n');
// Most bytes accepted for a response head, a chunk-size line or a trailer.
const MAX_HEAD = 1 << 20;
const STATUS_LINE = /^HTTP\/1\.([0-9]) ([1-9][0-9][0-9])(?:[ \t]|$)/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e]*$/;
const REQUEST_TARGET = /^[\x21-\x7e]+$/;

// Where the parser is in the response being read.
const HEAD = 0; // status line and header fields (again after a 1xx)
const FIXED = 1; // a Content-Length body
const CHUNK_SIZE = 2; // chunked body: a chunk-size line
const CHUNK_DATA = 3; // ... the chunk's bytes
const CHUNK_END = 4; // ... the CRLF after them
const TRAILER = 5; // ... trailer fields, up to an empty line
const UNTIL_EOF = 6; // a body delimited by the end of the connection

let socket = null; // the connection, or null before the first request and once it is closed
let socketReused = false; // has it carried a complete exchange already?
let received = EMPTY; // bytes received on it and not parsed yet
let exchange = null; // the request awaiting its response; null while idle
const waiting = []; // requests made while another was in progress (not in normal operation)

function protocolError(message) {
  return new Error(`Runtime API: ${message}`);
}

/** Make one request; resolves to { status, headers, body: Buffer }. */
function call(method, urlPath, body, headers = {}) {
  return new Promise((resolve, reject) => {
    if (!TOKEN.test(method) || !REQUEST_TARGET.test(urlPath)) {
      throw new TypeError(`invalid request line: ${method} ${urlPath}`);
    }
    let head = `${method} ${urlPath} HTTP/1.1\r\n${FIXED_HEADERS}`;
    for (const name of Object.keys(headers)) {
      const value = String(headers[name]);
      if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) throw new TypeError(`invalid header ${name}`);
      head += `${name}: ${value}\r\n`;
    }
    let payload;
    if (body === undefined) {
      payload = `${head}\r\n`;
    } else if (typeof body === 'string') {
      // The head is ASCII, so one UTF-8 string write sends head and body.
      payload = `${head}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    } else {
      const data = Buffer.from(body);
      payload = [Buffer.from(`${head}Content-Length: ${data.length}\r\n\r\n`, 'latin1'), data];
    }
    const ex = {
      payload, resolve, reject, retried: false, reused: false, started: false,
      state: HEAD, scanFrom: 0, status: 0, headers: null, keepAlive: true,
      body: EMPTY, filled: 0, remaining: 0, parts: null,
    };
    if (exchange === null) send(ex);
    else waiting.push(ex);
  });
}

function send(ex) {
  exchange = ex;
  if (socket === null) openSocket();
  // A request in progress keeps the event loop alive (/next is a long poll);
  // an idle connection must not (see callbackWaitsForEmptyEventLoop).
  else socket.ref();
  ex.reused = socketReused;
  ex.started = false;
  ex.state = HEAD;
  ex.scanFrom = 0;
  if (typeof ex.payload === 'string') {
    socket.write(ex.payload);
  } else {
    socket.cork();
    for (const data of ex.payload) socket.write(data);
    socket.uncork();
  }
}

function openSocket() {
  const sock = connect({ host: apiHost, port: apiPort });
  // Requests and responses are single small writes; never let Nagle's
  // algorithm hold one back waiting for an ACK.
  sock.setNoDelay(true);
  // Events of a connection already given up are ignored.
  sock.on('data', (chunk) => { if (sock === socket) onData(chunk); });
  sock.on('end', () => { if (sock === socket) onClosed(null); });
  sock.on('close', () => { if (sock === socket) onClosed(null); });
  sock.on('error', (err) => { if (sock === socket) onClosed(err); });
  socket = sock;
  socketReused = false;
  received = EMPTY;
}

function dropSocket() {
  if (socket !== null) {
    socket.destroy();
    socket = null;
  }
  socketReused = false;
  received = EMPTY;
}

function startNext() {
  if (waiting.length !== 0) send(waiting.shift());
}

function complete(ex) {
  exchange = null;
  if (ex.keepAlive && received.length === 0 && socket !== null && socket.writableLength === 0) {
    socketReused = true;
    if (waiting.length === 0) socket.unref();
  } else {
    // Connection: close, a body that ran to the end of the connection, bytes
    // beyond the response (nothing else may come unasked), or an answer that
    // came before all of the request was sent (e.g. 413): reconnect.
    dropSocket();
  }
  ex.resolve({ status: ex.status, headers: ex.headers, body: ex.body });
  startNext();
}

function fail(ex, err) {
  exchange = null;
  ex.reject(err);
  startNext();
}

function onData(chunk) {
  const ex = exchange;
  if (ex === null) {
    // Bytes nobody asked for (e.g. a 408 before an idle close): the
    // connection cannot be followed any more.
    dropSocket();
    return;
  }
  ex.started = true;
  received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
  try {
    parse(ex);
  } catch (err) {
    dropSocket();
    fail(ex, err);
  }
}

/** The connection ended, by EOF or error. */
function onClosed(err) {
  const ex = exchange;
  const eof = err === null;
  dropSocket();
  if (ex === null) return; // an idle connection: the next request opens another
  if (ex.state === UNTIL_EOF && eof) {
    ex.body = Buffer.concat(ex.parts);
    complete(ex);
  } else if (!ex.started && ex.reused && !ex.retried) {
    // The server may close an idle kept-alive connection just as a request
    // goes out on it. Nothing came back, so the request was not processed:
    // one retry on a new connection is safe.
    ex.retried = true;
    send(ex);
  } else {
    fail(ex, err ?? protocolError(ex.started
      ? 'the connection closed in the middle of a response'
      : 'the connection closed before a response'));
  }
}

/** Parse what has been received of ex's response; complete it when whole. */
function parse(ex) {
  for (;;) {
    switch (ex.state) {
      case HEAD: {
        const end = received.indexOf(HEAD_END, ex.scanFrom);
        if (end < 0) {
          if (received.length > MAX_HEAD) throw protocolError('response head too large');
          ex.scanFrom = Math.max(0, received.length - 3);
          return;
        }
        const head = received.toString('latin1', 0, end);
        received = received.subarray(end + 4);
        ex.scanFrom = 0;
        if (parseHead(ex, head)) return;
        break;
      }
      case FIXED: {
        const n = Math.min(ex.remaining, received.length);
        received.copy(ex.body, ex.filled, 0, n);
        ex.filled += n;
        ex.remaining -= n;
        received = received.subarray(n);
        if (ex.remaining === 0) {
          complete(ex);
          return;
        }
        if (received.length === 0) return;
        break;
      }
      case CHUNK_SIZE:
      case TRAILER: {
        const end = received.indexOf(LINE_END);
        if (end < 0) {
          if (received.length > MAX_HEAD) throw protocolError('chunk-size line or trailer too long');
          return;
        }
        const line = received.toString('latin1', 0, end);
        received = received.subarray(end + 2);
        if (ex.state === TRAILER) {
          if (line === '') {
            ex.body = Buffer.concat(ex.parts);
            complete(ex);
            return;
          }
          break; // a trailer field: not used
        }
        const size = line.split(';', 1)[0].trim();
        if (!/^[0-9a-fA-F]{1,12}$/.test(size)) throw protocolError(`bad chunk size ${JSON.stringify(line.slice(0, 100))}`);
        ex.remaining = parseInt(size, 16);
        ex.state = ex.remaining === 0 ? TRAILER : CHUNK_DATA;
        break;
      }
      case CHUNK_DATA: {
        if (received.length === 0) return;
        const n = Math.min(ex.remaining, received.length);
        ex.parts.push(received.subarray(0, n));
        ex.remaining -= n;
        received = received.subarray(n);
        if (ex.remaining === 0) ex.state = CHUNK_END;
        break;
      }
      case CHUNK_END: {
        if (received.length < 2) return;
        if (received[0] !== 0x0d || received[1] !== 0x0a) throw protocolError('no CRLF after a chunk');
        received = received.subarray(2);
        ex.state = CHUNK_SIZE;
        break;
      }
      case UNTIL_EOF: {
        if (received.length !== 0) ex.parts.push(received);
        received = EMPTY;
        return;
      }
      default:
        throw new Error(`unreachable parser state ${ex.state}`);
    }
  }
}

function hasToken(value, token) {
  return value !== undefined && value.toLowerCase().split(',').some((item) => item.trim() === token);
}

/**
 * Take in a response head; sets how its body is delimited. Returns true when
 * the response is already complete (no body).
 */
function parseHead(ex, head) {
  const lines = head.split('\r\n');
  const match = STATUS_LINE.exec(lines[0]);
  if (!match) throw protocolError(`bad status line ${JSON.stringify(lines[0].slice(0, 100))}`);
  const status = Number(match[2]);
  const headers = Object.create(null);
  let last = null;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if ((line[0] === ' ' || line[0] === '\t') && last !== null) {
      headers[last] += ` ${line.trim()}`; // obsolete line folding
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw protocolError(`bad header line ${JSON.stringify(line.slice(0, 100))}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    last = name;
  }
  if (status < 200) return false; // an interim response (100 Continue ...); the real one follows

  ex.status = status;
  ex.headers = headers;
  ex.keepAlive = match[1] === '1'
    ? !hasToken(headers.connection, 'close')
    : hasToken(headers.connection, 'keep-alive');
  const transferEncoding = headers['transfer-encoding'];
  const contentLength = headers['content-length'];
  if (status === 204 || status === 304) {
    ex.body = EMPTY;
  } else if (transferEncoding !== undefined) {
    // Transfer-Encoding overrides Content-Length; without a final "chunked"
    // the body runs to the end of the connection.
    ex.parts = [];
    const codings = transferEncoding.toLowerCase().split(',');
    if (codings[codings.length - 1].trim() === 'chunked') {
      ex.state = CHUNK_SIZE;
    } else {
      ex.state = UNTIL_EOF;
      ex.keepAlive = false;
    }
    return false;
  } else if (contentLength !== undefined) {
    // Repeated (equal) values arrive joined by commas.
    const values = contentLength.split(',').map((item) => item.trim());
    if (!/^[0-9]{1,15}$/.test(values[0]) || values.some((item) => item !== values[0])) {
      throw protocolError(`bad Content-Length ${JSON.stringify(contentLength.slice(0, 100))}`);
    }
    const length = Number(values[0]);
    if (received.length >= length) {
      ex.body = received.subarray(0, length); // the usual case: the body came with the head
      received = received.subarray(length);
    } else {
      ex.body = Buffer.allocUnsafe(length); // read straight into it: events can be megabytes
      ex.filled = 0;
      ex.remaining = length;
      ex.state = FIXED;
      return false;
    }
  } else {
    ex.parts = [];
    ex.state = UNTIL_EOF;
    ex.keepAlive = false;
    return false;
  }
  complete(ex);
  return true;
}

/**
 * Report a post the API refused. 4xx concerns only this invocation (e.g. 413
 * for an oversized response), so the loop goes on; 5xx means the environment
 * is broken and the API asks the runtime to exit.
 */
function checkPosted({ status, body }, what) {
  if (status < 300) return;
  process.stderr.write(`updraft runtime: ${what} was rejected: HTTP ${status} ${body.subarray(0, 1000)}\n`);
  if (status >= 500) process.exit(1);
}

function headerValue(text) {
  // call() rejects control and non-ASCII characters in header values.
  return String(text).replace(/[^\x20-\x7e]/g, '?');
}

// ---------------------------------------------------------------------------
// Console: the same line format as AWS,
//   <ISO time>\t<request id>\t<LEVEL>\t<message>
// Newlines inside a message become \r so that one console call stays one
// log record. Everything goes to stdout, as on AWS. Before the first
// invocation the request id prints as "undefined", also as on AWS.
// ---------------------------------------------------------------------------

let currentRequestId;

function logger(level) {
  return (...args) => {
    const message = format(...args).replace(/\n/g, '\r');
    process.stdout.write(`${new Date().toISOString()}\t${currentRequestId}\t${level}\t${message}\n`);
  };
}

console.trace = logger('TRACE');
console.debug = logger('DEBUG');
console.info = logger('INFO');
console.log = console.info;
console.warn = logger('WARN');
console.error = logger('ERROR');

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/** An error detected by the runtime itself, typed Runtime.<kind>. */
function runtimeError(kind, message) {
  const error = new Error(message);
  // Not enumerable, like Error.prototype.name; V8 reads it when it first
  // formats .stack, so the stack's first line shows the Runtime.* type.
  Object.defineProperty(error, 'name', { value: `Runtime.${kind}`, configurable: true, writable: true });
  return error;
}

function isErrorLike(value) {
  return types.isNativeError(value) || (value != null && typeof value.name === 'string'
    && typeof value.message === 'string' && typeof value.stack === 'string');
}

/** The body posted to /error and /init/error: Node's { errorType, errorMessage, trace }. */
function errorBody(error) {
  try {
    if (isErrorLike(error)) {
      return { errorType: error.name, errorMessage: error.message, trace: String(error.stack).split('\n') };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch {
    // A getter threw, or the value cannot be turned into a string.
    const errorMessage = 'the error\'s name, message or stack could not be read';
    return { errorType: 'handled', errorMessage, trace: [] };
  }
}

/** Log an error as AWS does: label, then a tab and the error as JSON. */
function logError(label, error) {
  let json;
  try {
    // Error fields are not enumerable; spell them out, keep the user's own.
    json = JSON.stringify(error, (_key, value) => (value instanceof Error
      ? {
        errorType: value.name, errorMessage: value.message, code: value.code, ...value,
        stack: typeof value.stack === 'string' ? value.stack.split('\n') : value.stack,
      }
      : value));
  } catch {
    json = JSON.stringify(errorBody(error));
  }
  console.error(label, `\t${json}`);
}

// ---------------------------------------------------------------------------
// Handler loading
// ---------------------------------------------------------------------------

// A CommonJS require() for user code. Every path handed to it is absolute
// (bare names go through .resolve with explicit paths), so where it is
// anchored only shows in "Require stack" lines of error messages.
const userRequire = createRequire(import.meta.url);

/** require() a file, or import() it when it is an ES module. */
async function requireOrImport(file) {
  try {
    return userRequire(file);
  } catch (err) {
    // ERR_REQUIRE_ESM: .js in a "type": "module" package (Node 20);
    // ERR_REQUIRE_ASYNC_MODULE: ESM with top-level await (Node >= 22).
    if (err?.code !== 'ERR_REQUIRE_ESM' && err?.code !== 'ERR_REQUIRE_ASYNC_MODULE') throw err;
    return import(pathToFileURL(file).href);
  }
}

async function importUserModule(moduleRoot, moduleName) {
  const base = path.resolve(TASK_ROOT, moduleRoot, moduleName);
  // Same search order as AWS: the name as given, then .js, .mjs and .cjs.
  if (existsSync(base)) return requireOrImport(base);
  if (existsSync(`${base}.js`)) return requireOrImport(`${base}.js`);
  if (existsSync(`${base}.mjs`)) return import(pathToFileURL(`${base}.mjs`).href);
  if (existsSync(`${base}.cjs`)) return userRequire(`${base}.cjs`);
  // Finally, resolve it as require() would (e.g. a package in node_modules).
  const paths = [TASK_ROOT, path.resolve(TASK_ROOT, moduleRoot)];
  const resolved = userRequire.resolve(moduleName, { paths });
  return requireOrImport(resolved);
}

/**
 * Load the handler named "dir/file.path.to.fn": file is looked up in
 * TASK_ROOT/dir, and path.to.fn is followed through its exports.
 */
async function loadHandler(fullName) {
  if (fullName.includes('..')) {
    const message = `'${fullName}' is not a valid handler name: '..' is not allowed`;
    throw runtimeError('MalformedHandlerName', message);
  }
  const baseName = path.basename(fullName);
  const moduleRoot = fullName.slice(0, fullName.length - baseName.length);
  const match = /^([^.]+)\.(.*)$/.exec(baseName);
  if (!match) throw runtimeError('MalformedHandlerName', 'Bad handler');
  const [, moduleName, handlerPath] = match;

  let userModule;
  try {
    userModule = await importUserModule(moduleRoot, moduleName);
  } catch (err) {
    if (err instanceof SyntaxError) throw runtimeError('UserCodeSyntaxError', String(err));
    if (err?.code === 'MODULE_NOT_FOUND' || err?.code === 'ERR_MODULE_NOT_FOUND') {
      throw runtimeError('ImportModuleError', String(err));
    }
    throw err; // the user's own error, reported with its own type
  }

  const handler = handlerPath.split('.').reduce((value, key) => value?.[key], userModule);
  if (!handler) throw runtimeError('HandlerNotFound', `${fullName} is undefined or not exported`);
  if (typeof handler !== 'function') throw runtimeError('HandlerNotFound', `${fullName} is not a function`);
  return handler;
}

// ---------------------------------------------------------------------------
// Invocations
// ---------------------------------------------------------------------------

// What to do when the event loop runs dry during an invocation (see
// 'beforeExit' below); null when nothing is waiting for that.
let onEventLoopEmpty = null;
// The invocation in progress, for reporting uncaught errors against it.
let inFlight = null;
// False until the handler has been loaded: errors before then are init errors.
let initialized = false;

function parseJsonHeader(value, what) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${what} as json: ${err}`);
  }
}

async function postResult(requestId, result) {
  let json;
  try {
    json = JSON.stringify(result === undefined ? null : result);
  } catch {
    // Circular structures, BigInt, throwing toJSON ...
    return reportInvokeError(requestId, new Error('Unable to stringify response body'));
  }
  checkPosted(await call('POST', `${API_PREFIX}/invocation/${encodeURIComponent(requestId)}/response`, json,
    { 'Content-Type': 'application/json' }), `response for ${requestId}`);
}

function reportInvokeError(requestId, error) {
  logError('Invoke Error', error);
  return postError(requestId, error);
}

async function postError(requestId, error) {
  const body = errorBody(error);
  checkPosted(await call('POST', `${API_PREFIX}/invocation/${encodeURIComponent(requestId)}/error`,
    JSON.stringify(body), {
      'Content-Type': 'application/json',
      'Lambda-Runtime-Function-Error-Type': headerValue(body.errorType),
    }), `error for ${requestId}`);
}

// ---------------------------------------------------------------------------
// Response streaming: a handler wrapped in awslambda.streamifyResponse gets a
// writable stream as its second argument; what it writes goes to the Runtime
// API as it is written (Lambda's streaming response mode: a chunked POST, an
// error reported in its trailers).
// ---------------------------------------------------------------------------

const STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HTTP_INTEGRATION = 'application/vnd.awslambda.http-integration-response';

class HttpResponseStream {
  /** Starts an HTTP answer: its head (statusCode, headers, cookies) as a JSON prelude. */
  static from(stream, prelude) {
    stream.setContentType(HTTP_INTEGRATION);
    stream.write(JSON.stringify(prelude ?? {}));
    stream.write(new Uint8Array(8));
    return stream;
  }
}

globalThis.awslambda = {
  streamifyResponse(handler) {
    handler[STREAMING] = 'response';
    return handler;
  },
  HttpResponseStream,
};

/** Runs a streaming handler; resolves once its answer has been posted whole. */
function streamResponse(handler, requestId, event, context) {
  return new Promise((resolve) => {
    let contentType = 'application/octet-stream';
    let request = null;
    // Opened on the first write (or the end), so that setContentType still counts.
    const open = () => {
      if (request !== null) return request;
      request = httpRequest({
        host: apiHost,
        port: apiPort,
        method: 'POST',
        path: `${API_PREFIX}/invocation/${encodeURIComponent(requestId)}/response`,
        agent: false,
        headers: {
          'Content-Type': contentType,
          'Lambda-Runtime-Function-Response-Mode': 'streaming',
          'Transfer-Encoding': 'chunked',
          Trailer: 'Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body',
        },
      });
      request.on('response', (response) => {
        response.resume();
        response.on('end', resolve);
      });
      request.on('error', (err) => {
        process.stderr.write(`updraft runtime: the streamed response failed: ${err}\n`);
        resolve();
      });
      return request;
    };
    const stream = new Writable({
      write(chunk, _encoding, callback) { open().write(chunk, callback); },
      final(callback) {
        open().end();
        callback();
      },
    });
    stream.setContentType = (type) => {
      if (request === null) contentType = String(type);
    };
    const fail = (error) => {
      logError('Invoke Error', error);
      const body = errorBody(error);
      const posting = open();
      if (posting.writableEnded) return;
      posting.addTrailers({
        'Lambda-Runtime-Function-Error-Type': headerValue(body.errorType),
        'Lambda-Runtime-Function-Error-Body': Buffer.from(JSON.stringify(body)).toString('base64'),
      });
      posting.end();
    };
    stream.on('error', fail);
    Promise.resolve()
      .then(() => handler(event, stream, context))
      .then(() => { if (!stream.writableEnded) stream.end(); }, fail);
  });
}

/** Run one invocation; resolves once its outcome has been posted. */
function invoke(handler, handlerIsAsync, headers, body) {
  const requestId = headers['lambda-runtime-aws-request-id'];
  if (!requestId) {
    process.stderr.write('updraft runtime: /next response has no Lambda-Runtime-Aws-Request-Id\n');
    process.exit(1);
  }
  currentRequestId = requestId;
  if (headers['lambda-runtime-trace-id']) process.env._X_AMZN_TRACE_ID = headers['lambda-runtime-trace-id'];
  else delete process.env._X_AMZN_TRACE_ID;

  return new Promise((resolve, reject) => {
    const invocation = { requestId, posted: false };
    inFlight = invocation;

    // Post the outcome; only the first one counts.
    const finish = (error, result) => {
      if (invocation.posted) return;
      invocation.posted = true;
      onEventLoopEmpty = null;
      const posting = error !== undefined && error !== null
        ? reportInvokeError(requestId, error)
        : postResult(requestId, result);
      posting.then(resolve, reject);
    };

    // callback, context.done/succeed/fail and a returned promise: the first
    // of them to be called decides the outcome; later calls are ignored.
    let completed = false;
    let waitForEmptyEventLoop = true;
    const done = (error, result) => {
      if (completed) return;
      completed = true;
      finish(error, result);
    };
    const callback = (error, result) => {
      if (completed) return;
      completed = true;
      if (error !== undefined && error !== null) finish(error);
      else if (!waitForEmptyEventLoop) finish(null, result);
      // As on AWS: answer once everything the handler started has finished.
      else onEventLoopEmpty = () => setImmediate(() => finish(null, result));
    };

    // If the event loop drains with no outcome: a plain function that never
    // called back succeeded with null; an async one can never settle now.
    onEventLoopEmpty = () => {
      completed = true;
      if (handlerIsAsync) {
        const message = 'The event loop emptied before the async handler settled its promise';
        finish(runtimeError('NodeJsExit', message));
      } else {
        finish(null, null);
      }
    };

    try {
      const deadline = Number(headers['lambda-runtime-deadline-ms']);
      const context = {
        awsRequestId: requestId,
        functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
        functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
        memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE, // a string, as on AWS
        logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
        logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
        invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
        clientContext: parseJsonHeader(headers['lambda-runtime-client-context'], 'ClientContext'),
        identity: parseJsonHeader(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
        tenantId: headers['lambda-runtime-aws-tenant-id'],
        getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
        get callbackWaitsForEmptyEventLoop() { return waitForEmptyEventLoop; },
        set callbackWaitsForEmptyEventLoop(value) { waitForEmptyEventLoop = value; },
        // The pre-callback API, still present on Node 20.
        done,
        succeed: (result) => done(null, result),
        fail: (error) => done(error ?? 'handled'),
      };
      if (handler[STREAMING] === 'response') {
        invocation.posted = true;
        onEventLoopEmpty = null;
        streamResponse(handler, requestId, JSON.parse(body.toString('utf8')), context).then(resolve, reject);
        return;
      }
      const result = handler(JSON.parse(body.toString('utf8')), context, callback);
      if (typeof result?.then === 'function') {
        result.then((value) => context.succeed(value), (error) => context.fail(error));
      }
    } catch (err) {
      callback(err);
    }
  });
}

process.on('beforeExit', () => {
  const action = onEventLoopEmpty;
  onEventLoopEmpty = null;
  action?.();
});

/** Report an uncaught error against whatever is running, then exit. */
function failFast(error, exitCode) {
  const exit = () => process.exit(exitCode);
  if (!initialized) {
    postInitError(error).then(exit, exit);
  } else if (inFlight !== null && !inFlight.posted) {
    inFlight.posted = true;
    onEventLoopEmpty = null;
    postError(inFlight.requestId, error).then(exit, exit);
  } else {
    // Between invocations, or while the outcome is already being posted:
    // there is nothing left to report the error against.
    exit();
  }
}

process.on('uncaughtException', (error) => {
  logError('Uncaught Exception', error);
  failFast(error, EXIT_UNCAUGHT);
});

process.on('unhandledRejection', (reason) => {
  let message;
  try {
    message = String(reason); // "Error: boom" for an Error, as on AWS
  } catch {
    message = typeof reason; // e.g. Object.create(null)
  }
  const error = runtimeError('UnhandledPromiseRejection', message);
  error.reason = reason;
  logError('Unhandled Promise Rejection', error);
  failFast(error, EXIT_UNHANDLED_REJECTION);
});

async function postInitError(error) {
  const body = errorBody(error);
  checkPosted(await call('POST', `${API_PREFIX}/init/error`, JSON.stringify(body), {
    'Content-Type': 'application/json',
    'Lambda-Runtime-Function-Error-Type': headerValue(body.errorType),
  }), 'init error');
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

/**
 * In a sandbox Updraft started ahead of need (interpreter warm, no function yet):
 * wait for the function's environment, its bundle now mounted at /var/task.
 */
async function awaitAssignment() {
  const { status, body } = await call('GET', `${API_PREFIX}/updraft/assignment`);
  if (status !== 200) {
    process.stderr.write(`updraft runtime: no function was assigned: HTTP ${status} ${body.subarray(0, 1000)}\n`);
    process.exit(1);
  }
  Object.assign(process.env, JSON.parse(body).env);
  TASK_ROOT = process.env.LAMBDA_TASK_ROOT || '/var/task';
  // The working folder was the empty /var/task the bundle is now mounted over.
  process.chdir(TASK_ROOT);
}

async function main() {
  if (process.env.UPDRAFT_DEFERRED === '1') {
    delete process.env.UPDRAFT_DEFERRED;
    await awaitAssignment();
  }
  let handler;
  try {
    handler = await loadHandler(process.env._HANDLER ?? '');
  } catch (err) {
    logError('Uncaught Exception', err);
    await postInitError(err);
    process.exit(EXIT_UNCAUGHT);
  }
  initialized = true;
  const handlerIsAsync = handler.constructor?.name === 'AsyncFunction';

  for (;;) {
    const { status, headers, body } = await call('GET', NEXT_PATH);
    if (status !== 200) {
      process.stderr.write(`updraft runtime: GET /next failed: HTTP ${status} ${body.subarray(0, 1000)}\n`);
      process.exit(1);
    }
    await invoke(handler, handlerIsAsync, headers, body);
    inFlight = null;
  }
}

main().catch((err) => {
  // Only transport failures get here: the Runtime API is gone.
  process.stderr.write(`updraft runtime: lost the Runtime API connection: ${err?.stack ?? err}\n`);
  process.exit(1);
});
