"""Drives `lambda-api-bench`'s measurements with boto3, as a deploy script for AWS would,
and prints the figures as JSON. Usage:

    lambda_api_driver.py ENDPOINT UPDRAFT DATA_DIR ROUNDS INVOCATIONS WEIGHT STREAMS HOLD_MS

- `create`: CreateFunction of a Python zip to its first answer (boto3's Invoke), against
  `updraft deploy` of the same code (the CLI, as a user runs it) to its first answer;
- `alias`: INVOCATIONS invocations through an alias sending WEIGHT of them to a second
  version (each invocation's version counted), against as many by version number."""

import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile

import boto3
import botocore.config

endpoint, updraft, data_dir = sys.argv[1], sys.argv[2], sys.argv[3]
rounds, invocations, weight = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
streams, hold_ms = int(sys.argv[7]), int(sys.argv[8])

lam = boto3.client(
    "lambda",
    endpoint_url=endpoint,
    region_name="us-east-1",
    config=botocore.config.Config(retries={"max_attempts": 0}),
)
CODE = "def handler(event, context):\n    return {'version': context.function_version}\n"
ROLE = "arn:aws:iam::000000000000:role/bench"


def package(code):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", code)
    return buffer.getvalue()


def first_answer(name, **kwargs):
    response = lam.invoke(FunctionName=name, Payload=b"{}", **kwargs)
    payload = json.loads(response["Payload"].read())
    if response.get("FunctionError"):
        raise SystemExit(f"{name} failed: {payload}")
    return response.get("ExecutedVersion")


out = {"create_ms": [], "deploy_ms": []}
with tempfile.TemporaryDirectory() as scratch:
    for round_ in range(rounds):
        name = f"api-made-{round_}"
        started = time.perf_counter()
        lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                            Code={"ZipFile": package(CODE)})
        first_answer(name)
        out["create_ms"].append((time.perf_counter() - started) * 1000)

        name = f"deployed-{round_}"
        app = os.path.join(scratch, name)
        os.makedirs(os.path.join(app, "src"))
        with open(os.path.join(app, "src", "app.py"), "w") as f:
            f.write(CODE)
        with open(os.path.join(app, "updraft.toml"), "w") as f:
            f.write(f'[app]\nname = "{name}"\n\n[functions.{name}]\nruntime = "python3"\n'
                    f'handler = "app.handler"\nsource = "src"\n')
        started = time.perf_counter()
        subprocess.run([updraft, "deploy", app, "--endpoint", endpoint, "--data-dir", data_dir],
                       check=True, capture_output=True)
        first_answer(name)
        out["deploy_ms"].append((time.perf_counter() - started) * 1000)

lam.create_function(FunctionName="split", Runtime="python3.12", Role=ROLE, Handler="app.handler",
                    Code={"ZipFile": package(CODE)})
lam.update_function_code(FunctionName="split", ZipFile=package(CODE + "# two\n"))
lam.create_alias(FunctionName="split", Name="live", FunctionVersion="1",
                 RoutingConfig={"AdditionalVersionWeights": {"2": weight}})
for qualifier in ["1", "2", "live"]:
    first_answer("split", Qualifier=qualifier)  # each version's instance started, untimed

counts = {}
started = time.perf_counter()
for _ in range(invocations):
    version = first_answer("split", Qualifier="live")
    counts[version] = counts.get(version, 0) + 1
out["alias_s"] = time.perf_counter() - started
out["alias_counts"] = counts
started = time.perf_counter()
for _ in range(invocations):
    first_answer("split", Qualifier="1")
out["version_s"] = time.perf_counter() - started

SERVER = """
const http = require("http");
const hold = Number(process.env.HOLD_MS);
http.createServer((req, res) => {
  if (req.method === "GET") return res.end("ready");
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.write("first\\n");
    setTimeout(() => res.end("last\\n"), hold);
  });
}).listen(Number(process.env.PORT), "127.0.0.1");
"""


def deploy_streaming(name, code_path, code, function_keys):
    """Deploys a one-function app named NAME with CODE at CODE_PATH, started untimed."""
    with tempfile.TemporaryDirectory() as app:
        os.makedirs(os.path.dirname(os.path.join(app, code_path)))
        with open(os.path.join(app, code_path), "w") as f:
            f.write(code)
        with open(os.path.join(app, "updraft.toml"), "w") as f:
            f.write(f'[app]\nname = "{name}"\n\n[functions.{name}]\n{function_keys}'
                    f'env = {{ HOLD_MS = "{hold_ms}" }}\n')
        subprocess.run([updraft, "deploy", app, "--endpoint", endpoint, "--data-dir", data_dir],
                       check=True, capture_output=True)
    lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read()


deploy_streaming("ticker", "app/server.js", SERVER, 'runtime = "http"\nsource = "app"\ncommand = "node server.js"\n')

# The same answer from a Lambda handler, streamed with awslambda.streamifyResponse.
HANDLER = """
export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.setContentType("text/plain");
  responseStream.write("first\\n");
  await new Promise((resolve) => setTimeout(resolve, Number(process.env.HOLD_MS)));
  responseStream.end("last\\n");
});
"""
deploy_streaming("streamer", "src/index.mjs", HANDLER,
                 'runtime = "nodejs"\nhandler = "index.handler"\nsource = "src"\n')


def first_bytes(function, prefix):
    out[f"{prefix}_first_ms"], out[f"{prefix}_whole_ms"], out[f"{prefix}_buffered_first_ms"] = [], [], []
    for _ in range(streams):
        started = time.perf_counter()
        response = lam.invoke_with_response_stream(FunctionName=function, Payload=b"{}")
        chunks = 0
        for event in response["EventStream"]:
            if "PayloadChunk" in event:
                chunks += 1
                if chunks == 1:
                    out[f"{prefix}_first_ms"].append((time.perf_counter() - started) * 1000)
            elif "InvokeComplete" in event and event["InvokeComplete"].get("ErrorCode"):
                raise SystemExit(f"the stream failed: {event}")
        out[f"{prefix}_whole_ms"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        response = lam.invoke(FunctionName=function, Payload=b"{}")
        response["Payload"].read(1)
        out[f"{prefix}_buffered_first_ms"].append((time.perf_counter() - started) * 1000)


first_bytes("ticker", "stream")
first_bytes("streamer", "handler")
print(json.dumps(out))
