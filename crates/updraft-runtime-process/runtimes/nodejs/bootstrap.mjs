// Updraft runtime bootstrap for Node.js handlers.
//
// Runs as `node /var/runtime/bootstrap.mjs`. It is the client side of the
// Lambda Runtime API (version 2018-06-01): it loads the handler named by
// _HANDLER ("file.function", file being file.js, file.mjs or file.cjs under
// LAMBDA_TASK_ROOT), then loops forever fetching an event from
// /runtime/invocation/next and posting the handler's result or error back.
// Handlers, the context object, console output and error bodies behave as on
// AWS's Node.js 20 runtime, including callback-style handlers and
// context.callbackWaitsForEmptyEventLoop. Only built-in modules are used.

import { Agent, request } from 'node:http';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
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
// Runtime API transport: one kept-alive connection, Nagle disabled.
// ---------------------------------------------------------------------------

class RuntimeApiAgent extends Agent {
  createConnection(options, callback) {
    const socket = super.createConnection(options, callback);
    socket.setNoDelay(true);
    return socket;
  }
}

// maxSockets 1: requests are strictly sequential, so they all share one
// socket. An idle kept-alive socket is unref'd by the agent, so it does not
// keep the event loop alive (callbackWaitsForEmptyEventLoop relies on that).
// keepAliveMsecs only delays TCP keep-alive probes: with Node's default of
// 1 s the kernel would probe every second while /next long-polls.
const agent = new RuntimeApiAgent({ keepAlive: true, keepAliveMsecs: 60_000, maxSockets: 1 });
const [apiHost, apiPort] = parseAddress(process.env.AWS_LAMBDA_RUNTIME_API);

function parseAddress(address) {
  const match = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address ?? '');
  if (!match) {
    process.stderr.write(
      `updraft runtime: AWS_LAMBDA_RUNTIME_API must be host:port, not ${JSON.stringify(address)}\n`);
    process.exit(1);
  }
  return [match[1], Number(match[2])];
}

/** Make one request; resolves to { status, headers, body: Buffer }. */
function call(method, urlPath, body, headers = {}) {
  const data = body === undefined ? undefined : Buffer.from(body);
  if (data) headers['Content-Length'] = data.length;
  return new Promise((resolve, reject) => {
    const attempt = (isRetry) => {
      const req = request({ host: apiHost, port: apiPort, method, path: urlPath, headers, agent }, (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('end', () => resolve({
          status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks),
        }));
        res.on('error', reject);
      });
      req.on('error', (err) => {
        // The server may close an idle kept-alive socket just as we reuse it;
        // the request was then never seen, so one retry on a new socket is safe.
        if (!isRetry && req.reusedSocket && err.code === 'ECONNRESET') attempt(true);
        else reject(err);
      });
      req.end(data);
    };
    attempt(false);
  });
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
  // Node rejects control and non-Latin-1 characters in headers; keep ASCII.
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
