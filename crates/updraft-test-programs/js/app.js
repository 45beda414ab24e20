// A wasi:http function in JavaScript, built with componentize-js (StarlingMonkey).
addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  console.log(`javascript saw ${url.pathname}${url.search}`);
  event.respondWith(new Response(`Hello from JavaScript at ${url.pathname}${url.search}\n`, {
    headers: { "content-type": "text/plain" },
  }));
});
