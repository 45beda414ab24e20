// Updraft's dashboard: a page per route (`#/...`), each drawn from the /v1 API with
// the API key the user signed in with (kept for this tab only). Everything shown is
// set as text, never as HTML.
"use strict";

const KEY = "updraft-api-key";
// Script errors, kept for the browser tests to report.
window.updraftErrors = [];
window.addEventListener("error", (event) => window.updraftErrors.push(String(event.message)));
window.addEventListener("unhandledrejection", (event) => window.updraftErrors.push(String(event.reason)));
const view = document.getElementById("view");
const nav = document.getElementById("nav");

// What the current page runs (timers, streams); stopped when the route changes.
let cleanups = [];
function onLeave(fn) { cleanups.push(fn); }
function leave() { for (const fn of cleanups.splice(0)) { try { fn(); } catch (_) {} } }

// ---- elements ---------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function show(...children) { view.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined && child !== false)); }

function table(headers, rows, attrs) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map(([label, cls]) => h("th", { class: cls }, label)))),
    h("tbody", {}, rows));
}

const fmt = {
  ms(value) {
    if (value === null || value === undefined) return "–";
    if (value < 1) return `${value.toFixed(2)} ms`;
    if (value < 1000) return `${value.toFixed(1)} ms`;
    return `${(value / 1000).toFixed(2)} s`;
  },
  time(ms) { return new Date(ms).toLocaleString(); },
  clock(ms) { return new Date(ms).toLocaleTimeString(); },
  bytes(n) { return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(0)} MiB` : `${(n / 1024).toFixed(0)} KiB`; },
  usd(n) { return `$${n.toFixed(n < 1 ? 6 : 2)}`; },
};

// ---- the API ----------------------------------------------------------------

class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY);
  const response = await fetch(path, {
    ...options,
    headers: { authorization: `Bearer ${key}`, ...(options.headers || {}) },
  });
  if (response.status === 401) {
    sessionStorage.removeItem(KEY);
    throw new ApiError("the server refused this key; sign in again with a valid API key", 401);
  }
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(body && body.message ? body.message : `${response.status} from ${path}`, response.status);
  return body;
}

// A server-sent event stream read with fetch, so the key travels in a header rather
// than in the URL. Calls `onEvent(data)` per event until `signal` aborts.
async function stream(path, signal, onEvent) {
  const response = await fetch(path, {
    headers: { authorization: `Bearer ${sessionStorage.getItem(KEY)}`, accept: "text/event-stream" },
    signal,
  });
  if (!response.ok) throw new ApiError(`${response.status} from ${path}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (data) onEvent(data);
    }
  }
}

// ---- charts -------------------------------------------------------------------

const COLORS = ["#2f6fed", "#d64545", "#c98a0b", "#1f9d55", "#7b4de0"];

function chart(title, steps, series, { width = 440, height = 180, spark = false } = {}) {
  const holder = h("div", { class: spark ? "spark" : "card chart" }, spark ? null : h("h3", {}, title));
  const data = [steps.map((s) => s.start_ms / 1000), ...series.map(([, pick]) => steps.map(pick))];
  const options = {
    width, height,
    legend: { show: !spark },
    cursor: { show: !spark },
    axes: spark ? [{ show: false }, { show: false }] : [{}, { size: 56 }],
    scales: { x: { time: true } },
    series: [{}, ...series.map(([label], i) => ({
      label, stroke: COLORS[i % COLORS.length], width: spark ? 1 : 1.5, spanGaps: false,
      points: { show: !spark, size: 4 },
    }))],
  };
  if (spark) options.padding = [2, 0, 2, 0];
  requestAnimationFrame(() => new uPlot(options, data, holder));
  return holder;
}

// ---- pages ----------------------------------------------------------------------

function signIn(message) {
  nav.hidden = true;
  const input = h("input", { id: "api-key", type: "password", placeholder: "updk_…", autocomplete: "off" });
  const error = h("p", { class: "error-box", id: "sign-in-error" }, message || "");
  const form = h("form", {
    class: "card signin",
    onsubmit: async (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, input.value.trim());
      try {
        await api("/v1/status");
        location.hash = "#/";
        route();
      } catch (e) {
        sessionStorage.removeItem(KEY);
        error.textContent = e.message;
      }
    },
  },
  h("h1", {}, "Sign in"),
  h("p", { class: "muted" }, "With an API key: the admin key is in the server's data dir (admin-token)."),
  input,
  h("button", { class: "action", id: "sign-in", type: "submit" }, "Sign in"),
  error);
  show(form);
  input.focus();
}

async function functionsPage() {
  const list = await api("/v1/functions");
  const until = Date.now();
  const since = until - 3600_000;
  const rows = list.functions.map((f) => {
    const cells = [h("td", {}, "…"), h("td", {}, "…"), h("td", {}, "…")];
    api(`/v1/functions/${encodeURIComponent(f.name)}/stats?since=${since}&until=${until}&step_ms=60000`).then((stats) => {
      const opts = { width: 140, height: 28, spark: true };
      cells[0].replaceChildren(chart("requests", stats.steps, [["requests", (s) => s.invocations]], opts));
      cells[1].replaceChildren(chart("errors", stats.steps, [["errors", (s) => s.errors]], opts));
      cells[2].replaceChildren(chart("p99", stats.steps, [["p99", (s) => s.p99_ms]], opts));
    }).catch(() => {});
    return h("tr", { "data-function": f.name },
      h("td", {}, h("a", { href: `#/functions/${encodeURIComponent(f.name)}` }, f.name)),
      h("td", {}, f.app), h("td", {}, `v${f.version}`), h("td", {}, f.runtime), ...cells);
  });
  show(h("h1", {}, "Functions"),
    rows.length ? table([["Function"], ["App"], ["Version"], ["Runtime"], ["Requests (1h)"], ["Errors"], ["p99 duration"]], rows, { id: "functions" })
      : h("p", { class: "muted" }, "Nothing is deployed yet: `updraft deploy` an app."));
}

const WINDOWS = { "1h": 3600_000, "6h": 6 * 3600_000, "24h": 24 * 3600_000, "7d": 7 * 24 * 3600_000 };

async function functionPage(name) {
  const path = `/v1/functions/${encodeURIComponent(name)}`;
  const [fn, versions] = await Promise.all([api(path), api(`${path}/versions`)]);
  // The configuration's fields sit beside the function's own.
  const c = fn;
  const triggers = [
    ...c.routes.map((r) => `${r.kind} ${r.methods} ${r.route}`),
    ...c.topics.map((t) => `topic ${t}`),
    ...c.queues.map((q) => `queue ${q.queue} (dead letters → ${q.dead_letter_queue})`),
    ...c.schedules.map((s) => `schedule ${s.schedule} ${s.timezone}`),
    ...c.emails.map((e) => `email ${e}`),
  ];
  const summary = h("div", { class: "card" }, h("dl", { class: "kv" },
    h("dt", {}, "App"), h("dd", {}, fn.app),
    h("dt", {}, "Serving"), h("dd", { id: "serving" }, `v${fn.version} of v${fn.latest_version}`),
    h("dt", {}, "Runtime"), h("dd", {}, c.runtime),
    h("dt", {}, "Limits"), h("dd", {}, `${fmt.bytes(c.memory_bytes)} memory, ${c.timeout_ms / 1000} s timeout, concurrency ${c.concurrency ?? "unreserved"}`),
    h("dt", {}, "Triggers"), h("dd", {}, triggers.length ? triggers.join(" · ") : "none (invoke only)"),
    h("dt", {}, "Async"), h("dd", {}, `${c.retries} retries, max age ${c.max_event_age_ms / 1000} s` +
      (c.on_success ? `, on success → ${c.on_success}` : "") + (c.on_failure ? `, on failure → ${c.on_failure}` : "") +
      (c.dead_letter_topic ? `, dead letters → ${c.dead_letter_topic}` : ""))));

  const versionRows = versions.versions.map((v) => h("tr", {},
    h("td", {}, `v${v.version}`), h("td", {}, fmt.time(v.created_at_ms)), h("td", {}, v.artifact.slice(0, 19)),
    h("td", {}, v.current ? h("strong", {}, "serving") : h("button", {
      class: "action", "data-rollback": v.version,
      onclick: async (event) => {
        event.target.disabled = true;
        await api(`${path}/rollback`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ to: v.version }) });
        route();
      },
    }, `Roll back to v${v.version}`))));

  const windowSelect = h("select", { id: "window" }, Object.keys(WINDOWS).map((w) => h("option", { value: w }, w)));
  const charts = h("div", { class: "grid", id: "charts" });
  async function drawCharts() {
    const until = Date.now();
    const since = until - WINDOWS[windowSelect.value];
    const stats = await api(`${path}/stats?since=${since}&until=${until}`);
    const s = stats.steps;
    charts.replaceChildren(
      chart("Invocations, errors, throttles", s, [["invocations", (x) => x.invocations], ["errors", (x) => x.errors], ["throttles", (x) => x.throttles]]),
      chart("Duration (ms)", s, [["p50", (x) => x.p50_ms], ["p99", (x) => x.p99_ms]]),
      chart("Concurrency (average running)", s, [["concurrency", (x) => x.concurrency]]),
      chart("Cold starts", s, [["cold starts", (x) => x.cold_starts]]),
      chart("Peak memory (MiB)", s, [["memory", (x) => x.max_memory_bytes / (1 << 20)]]));
  }
  windowSelect.addEventListener("change", drawCharts);

  const statusFilter = h("select", { id: "status-filter" }, ["", "success", "error", "timeout", "throttled"].map((s) => h("option", { value: s }, s || "any status")));
  const traceFilter = h("input", { id: "trace-filter", placeholder: "trace id", size: 34 });
  const invocations = h("tbody", { id: "invocations" });
  // Pages: `pages` holds the cursor of each page shown so far; the newest page (no
  // cursor) is the only one refreshed by itself.
  let pages = [null];
  let nextBefore = null;
  const newer = h("button", { id: "newer", onclick: () => { pages.pop(); loadInvocations(); } }, "← Newer");
  const older = h("button", { id: "older", onclick: () => { pages.push(nextBefore); loadInvocations(); } }, "Older →");
  const pageLabel = h("span", { class: "muted", id: "page" });
  async function loadInvocations() {
    const status = statusFilter.value ? `&status=${statusFilter.value}` : "";
    const trace = traceFilter.value.trim() ? `&trace_id=${encodeURIComponent(traceFilter.value.trim())}` : "";
    const before = pages[pages.length - 1] === null ? "" : `&before=${pages[pages.length - 1]}`;
    const list = await api(`/v1/invocations?function=${encodeURIComponent(name)}&limit=25${status}${trace}${before}`);
    nextBefore = list.next_before ?? null;
    newer.disabled = pages.length === 1;
    older.disabled = nextBefore === null;
    pageLabel.textContent = pages.length === 1 ? "newest, refreshed every 2 s" : `page ${pages.length}`;
    invocations.replaceChildren(...list.invocations.map((i) => h("tr", { "data-invocation": i.id },
      h("td", {}, h("a", { href: `#/invocations/${encodeURIComponent(i.id)}?function=${encodeURIComponent(name)}&trace=${i.trace_id}` }, i.id)),
      h("td", {}, fmt.clock(i.started_at_ms)), h("td", {}, i.trigger),
      h("td", { class: `status-${i.status}` }, i.status), h("td", { class: "num" }, fmt.ms(i.duration_ms)),
      h("td", {}, i.cold ? "cold" : ""), h("td", { class: "num" }, `${i.max_memory_used_mb} MB`))));
  }
  const refilter = () => { pages = [null]; loadInvocations(); };
  statusFilter.addEventListener("change", refilter);
  traceFilter.addEventListener("change", refilter);

  const tail = h("div", { class: "tail", id: "log-tail" });
  const controller = new AbortController();
  onLeave(() => controller.abort());
  stream(`${path}/logs/stream`, controller.signal, (data) => {
    const line = JSON.parse(data);
    const atBottom = tail.scrollTop + tail.clientHeight >= tail.scrollHeight - 4;
    tail.append(h("div", { class: `${line.level} ${line.stream}` }, `${fmt.clock(line.at_ms)} ${line.request_id.slice(0, 8)} ${line.line}`));
    while (tail.childElementCount > 1000) tail.firstChild.remove();
    if (atBottom) tail.scrollTop = tail.scrollHeight;
  }).catch(() => {});

  show(h("h1", {}, name), summary,
    h("div", { class: "toolbar" }, h("span", {}, "Window"), windowSelect), charts,
    h("h2", {}, "Versions"), table([["Version"], ["Deployed"], ["Artifact"], [""]], versionRows, { id: "versions" }),
    h("h2", {}, "Invocations"), h("div", { class: "toolbar" }, statusFilter, traceFilter, newer, older, pageLabel),
    h("table", {}, h("thead", {}, h("tr", {}, ["Request id", "Started", "Trigger", "Status", "Duration", "", "Memory"].map((t) => h("th", {}, t)))), invocations),
    h("h2", {}, "Live log"), tail);
  await Promise.all([drawCharts(), loadInvocations()]);
  const timer = setInterval(() => { if (pages.length === 1) loadInvocations().catch(() => {}); }, 2000);
  onLeave(() => clearInterval(timer));
}

function waterfall(trace) {
  const spans = trace.spans;
  if (!spans.length) return h("p", { class: "muted" }, "No spans kept for this trace.");
  const start = Math.min(...spans.map((s) => s.start_us));
  const end = Math.max(...spans.map((s) => s.start_us + s.duration_us));
  const total = Math.max(end - start, 1);
  const children = new Map();
  const ids = new Set(spans.map((s) => s.span_id));
  for (const s of spans) {
    const parent = s.parent_span_id && ids.has(s.parent_span_id) ? s.parent_span_id : "";
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(s);
  }
  const rows = [];
  (function walk(parent, depth) {
    for (const s of (children.get(parent) || []).sort((a, b) => a.start_us - b.start_us)) {
      const phase = s.kind === "internal";
      const bar = h("div", { class: `bar${s.error ? " failed" : ""}${phase ? " phase" : ""}`, title: `${s.name}: ${fmt.ms(s.duration_us / 1000)}` });
      bar.style.left = `${((s.start_us - start) / total) * 100}%`;
      bar.style.width = `${(s.duration_us / total) * 100}%`;
      const name = h("div", { class: "name", "data-span": s.span_id }, `${"  ".repeat(depth)}${s.name} · ${fmt.ms(s.duration_us / 1000)}`);
      name.style.paddingLeft = `${depth * 14}px`;
      rows.push(name, h("div", { class: "lane" }, bar));
      walk(s.span_id, depth + 1);
    }
  })("", 0);
  return h("div", { class: "card waterfall", id: "waterfall" }, rows);
}

async function invocationPage(id, query) {
  const fn = query.get("function");
  const traceId = query.get("trace");
  const [trace, logs] = await Promise.all([
    traceId ? api(`/v1/traces/${encodeURIComponent(traceId)}`) : null,
    fn ? api(`/v1/functions/${encodeURIComponent(fn)}/logs?request_id=${encodeURIComponent(id)}&limit=1000`) : { lines: [] },
  ]);
  const own = trace ? trace.spans.find((s) => s.attributes["faas.invocation_id"] === id) : null;
  const details = own ? h("div", { class: "card" }, h("dl", { class: "kv" },
    Object.entries(own.attributes).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "string" ? v : JSON.stringify(v))]))) : null;
  // A queue batch: where each of its messages was sent from.
  const links = own && own.links && own.links.length ? h("div", { class: "card", id: "links" },
    h("h3", {}, "Linked spans (the senders of its messages)"),
    h("ul", {}, own.links.map((l) => h("li", {}, `trace ${l.trace_id} · span ${l.span_id}`)))) : null;
  show(h("h1", {}, `Invocation ${id}`),
    h("p", {}, fn ? h("a", { href: `#/functions/${encodeURIComponent(fn)}` }, `← ${fn}`) : null),
    details, links,
    h("h2", {}, `Trace ${traceId || ""}`), trace ? waterfall(trace) : h("p", { class: "muted" }, "No trace."),
    h("h2", {}, "Logs"),
    h("div", { class: "tail", id: "invocation-logs" }, logs.lines.map((l) => h("div", { class: `${l.level} ${l.stream}` }, `${fmt.clock(l.at_ms)} ${l.stream} ${l.line}`))));
}

async function eventsPage() {
  const [failed, queues] = await Promise.all([api("/v1/async/failed?limit=100"), api("/v1/queues")]);
  const message = h("p", { id: "events-message", class: "muted" });
  const failedRows = failed.events.map((e) => h("tr", { "data-event": e.id },
    h("td", {}, e.id), h("td", {}, h("a", { href: `#/functions/${encodeURIComponent(e.function)}` }, e.function)),
    h("td", {}, e.trigger), h("td", { class: "num" }, e.attempts), h("td", {}, fmt.time(e.enqueued_at)),
    h("td", {}, (e.last_error || "").split("\n")[0].slice(0, 120)),
    h("td", {}, h("button", {
      class: "action", "data-retry": e.id,
      onclick: async (event) => {
        event.target.disabled = true;
        try {
          await api(`/v1/async/${encodeURIComponent(e.id)}/retry`, { method: "POST" });
          message.textContent = `Retrying ${e.id}: queued again.`;
          event.target.textContent = "Queued";
        } catch (error) { message.textContent = error.message; }
      },
    }, "Retry"))));
  const retryAll = h("button", {
    class: "action", id: "retry-all", disabled: !failed.events.length,
    onclick: async () => {
      const done = await api("/v1/async/retry", { method: "POST" });
      message.textContent = `Retrying ${done.retried} failed events.`;
      setTimeout(route, 1000);
    },
  }, "Retry all");
  const queueRows = queues.queues.map((q) => h("tr", { "data-queue": q.queue },
    h("td", {}, q.queue), h("td", { class: "num" }, q.visible), h("td", { class: "num" }, q.in_flight),
    h("td", { class: "num" }, q.oldest_age_ms == null ? "–" : fmt.ms(q.oldest_age_ms)),
    h("td", {}, q.consumers.join(", ") || "–"),
    h("td", {}, q.dead_letters_of.length ? h("button", {
      class: "action", "data-redrive": q.queue, disabled: !q.visible,
      onclick: async () => {
        const moved = await api(`/v1/queues/${encodeURIComponent(q.queue)}/redrive`, { method: "POST" });
        message.textContent = `Moved ${moved.moved} messages from ${moved.from} to ${moved.to}.`;
        setTimeout(route, 1000);
      },
    }, `Redrive to ${q.dead_letters_of.join(", ")}`) : "")));
  show(h("h1", {}, "Events"), message,
    h("h2", {}, "Failed asynchronous invocations"),
    failed.events.length ? [h("div", { class: "toolbar" }, retryAll),
      table([["Id"], ["Function"], ["Trigger"], ["Attempts", "num"], ["Accepted"], ["Last error"], [""]], failedRows, { id: "failed-events" })]
      : h("p", { class: "muted", id: "no-failed-events" }, "None: every asynchronous invocation ran or is still queued."),
    h("h2", {}, "Work queues"),
    queueRows.length ? table([["Queue"], ["Visible", "num"], ["In flight", "num"], ["Oldest"], ["Consumers"], [""]], queueRows, { id: "queues" })
      : h("p", { class: "muted" }, "No queue triggers are deployed."));
}

async function usagePage() {
  const usage = await api("/v1/usage");
  const rows = usage.functions.map((f) => h("tr", {},
    h("td", {}, f.function), h("td", { class: "num" }, f.requests), h("td", { class: "num" }, f.gb_seconds.toFixed(3)),
    h("td", { class: "num" }, f.cold_starts), h("td", { class: "num" }, f.errors), h("td", { class: "num" }, f.throttles),
    h("td", { class: "num" }, fmt.usd(f.cost_usd))));
  show(h("h1", {}, "Usage and cost"),
    h("p", { class: "muted" }, `Since ${fmt.time(usage.since_ms)}, at $${usage.prices.per_million_requests_usd} per million requests and $${usage.prices.per_gb_second_usd} per GB-second.`),
    table([["Function"], ["Requests", "num"], ["GB-seconds", "num"], ["Cold starts", "num"], ["Errors", "num"], ["Throttles", "num"], ["Cost", "num"]], rows, { id: "usage" }),
    h("p", {}, `Total: ${usage.total.requests} requests, ${fmt.usd(usage.total.cost_usd)}`));
}

// A workflow's states in the order they can be reached, each with where it goes next;
// `visited` states (and the `current` one) marked.
function stateDiagram(definition, visited = new Set(), current = null, failed = false) {
  const states = definition.States || {};
  const order = [];
  const queue = [definition.StartAt];
  while (queue.length) {
    const name = queue.shift();
    if (!name || order.includes(name) || !states[name]) continue;
    order.push(name);
    const s = states[name];
    queue.push(s.Next, s.Default, ...(s.Choices || []).map((c) => c.Next), ...(s.Catch || []).map((c) => c.Next));
  }
  for (const name of Object.keys(states)) if (!order.includes(name)) order.push(name);
  return h("div", { class: "states" }, order.map((name) => {
    const s = states[name];
    const next = [
      s.Next && `→ ${s.Next}`,
      s.Choices && `choices → ${s.Choices.map((c) => c.Next).join(", ")}`,
      s.Default && `default → ${s.Default}`,
      s.Catch && `on error → ${s.Catch.map((c) => c.Next).join(", ")}`,
      s.End && "end",
    ].filter(Boolean).join(" · ");
    const cls = ["state", visited.has(name) && "visited", name === current && (failed ? "failed" : "current")].filter(Boolean).join(" ");
    return h("div", { class: cls, "data-state": name }, h("strong", {}, name), h("span", { class: "type" }, s.Type), h("div", { class: "next" }, next));
  }));
}

async function workflowsPage() {
  const list = await api("/v1/workflows");
  const cards = await Promise.all(list.workflows.map(async (w) => {
    const executions = await api(`/v1/workflows/${encodeURIComponent(w.name)}/executions?limit=20`);
    const rows = executions.executions.map((e) => h("tr", { "data-execution": e.id },
      h("td", {}, h("a", { href: `#/executions/${encodeURIComponent(e.id)}?workflow=${encodeURIComponent(w.name)}` }, e.id)),
      h("td", { class: `status-${e.status === "succeeded" ? "success" : e.status === "running" ? "" : "error"}` }, e.status),
      h("td", {}, e.state), h("td", {}, fmt.time(e.started_at_ms)), h("td", { class: "num" }, fmt.ms(e.updated_at_ms - e.started_at_ms))));
    return h("div", { class: "card", "data-workflow": w.name },
      h("h2", {}, `${w.name}`, h("span", { class: "muted" }, ` · app ${w.app}`)),
      h("div", { class: "grid" }, stateDiagram(w.definition),
        rows.length ? table([["Execution"], ["Status"], ["State"], ["Started"], ["Took", "num"]], rows)
          : h("p", { class: "muted" }, "No executions yet.")));
  }));
  show(h("h1", {}, "Workflows"), cards.length ? cards : h("p", { class: "muted" }, "No workflows are deployed."));
}

async function executionPage(id, query) {
  const execution = await api(`/v1/executions/${encodeURIComponent(id)}`);
  const list = await api("/v1/workflows");
  const workflow = list.workflows.find((w) => w.name === execution.workflow);
  // Every execution starts in StartAt; later states are entered in the history.
  const visited = new Set(execution.history.map((e) => e.state).filter(Boolean));
  if (workflow) visited.add(workflow.definition.StartAt);
  const failed = execution.status !== "running" && execution.status !== "succeeded";
  const rows = execution.history.map((e) => h("tr", {},
    h("td", { class: "num" }, e.seq), h("td", {}, fmt.clock(e.at_ms)), h("td", {}, e.kind), h("td", {}, e.state || ""),
    h("td", {}, e.detail === null || e.detail === undefined ? "" : JSON.stringify(e.detail).slice(0, 160))));
  show(h("h1", {}, `Execution ${id}`),
    h("p", {}, h("a", { href: "#/workflows" }, `← ${execution.workflow}`)),
    h("div", { class: "card" }, h("dl", { class: "kv" },
      h("dt", {}, "Status"), h("dd", { id: "execution-status" }, execution.status),
      h("dt", {}, "State"), h("dd", {}, execution.state),
      h("dt", {}, "Started"), h("dd", {}, fmt.time(execution.started_at_ms)),
      execution.error ? [h("dt", {}, "Error"), h("dd", {}, `${execution.error}: ${execution.cause || ""}`)] : null)),
    h("div", { class: "grid" },
      workflow ? h("div", {}, h("h2", {}, "States"), stateDiagram(workflow.definition, visited, execution.state, failed)) : null,
      h("div", {}, h("h2", {}, "Input"), h("pre", { class: "json" }, JSON.stringify(execution.input, null, 2)),
        h("h2", {}, "Output"), h("pre", { class: "json" }, execution.output === null ? "–" : JSON.stringify(execution.output, null, 2)))),
    h("h2", {}, "History"), table([["#", "num"], ["At"], ["Event"], ["State"], ["Detail"]], rows, { id: "history" }));
}

// ---- routing ---------------------------------------------------------------------

async function route() {
  leave();
  if (!sessionStorage.getItem(KEY)) return signIn();
  nav.hidden = false;
  const [path, search] = location.hash.replace(/^#/, "").split("?");
  const parts = (path || "/").split("/").filter(Boolean).map(decodeURIComponent);
  const section = parts[0] || "functions";
  for (const link of nav.querySelectorAll("a")) link.classList.toggle("active", link.dataset.nav === ({ invocations: "functions", executions: "workflows" }[section] || section));
  try {
    if (section === "functions" && parts[1]) await functionPage(parts[1]);
    else if (section === "functions") await functionsPage();
    else if (section === "invocations") await invocationPage(parts[1], new URLSearchParams(search || ""));
    else if (section === "events") await eventsPage();
    else if (section === "workflows") await workflowsPage();
    else if (section === "executions") await executionPage(parts[1], new URLSearchParams(search || ""));
    else if (section === "usage") await usagePage();
    else show(h("p", {}, "No such page. "), h("a", { href: "#/" }, "Functions"));
  } catch (error) {
    if (error.status === 401) signIn(error.message);
    else show(h("p", { class: "error-box" }, error.message));
  }
}

document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  location.hash = "#/";
  route();
});
window.addEventListener("hashchange", route);
route();
