// A wasi:http function in TypeScript: tsc checks and compiles it to dist/app.js, and
// componentize-js turns that into a WebAssembly component (SpiderMonkey inside), which
// Updraft runs in a fresh instance per request. Requests arrive as `fetch` events with
// the web's Request and Response, typed as a service worker's.

declare const self: ServiceWorkerGlobalScope;

interface Greeting {
  message: string;
  language: "typescript";
}

self.addEventListener("fetch", (event: FetchEvent) => {
  const url = new URL(event.request.url);
  const name = url.searchParams.get("name") ?? "world";
  console.log(`greeting ${name}`);
  const greeting: Greeting = { message: `Hello, ${name}!`, language: "typescript" };
  event.respondWith(Response.json(greeting));
});

export {};
