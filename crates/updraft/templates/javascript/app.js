// A wasi:http function in JavaScript: componentize-js turns this file into a WebAssembly
// component (SpiderMonkey inside), which Updraft runs in a fresh instance per request.
// Requests arrive as `fetch` events with the web's Request and Response.

addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  const name = url.searchParams.get("name") || "world";
  console.log(`greeting ${name}`);
  event.respondWith(
    Response.json({ message: `Hello, ${name}!`, language: "javascript" }),
  );
});
