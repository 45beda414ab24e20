"""A Flask app, unchanged from how it would run anywhere else."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return "ok"


@app.get("/{{name}}")
def hello():
    return jsonify(message=f"Hello, {request.args.get('name', 'world')}!", framework="flask")


@app.post("/")
def event():
    # Events (topics, queues, schedules, direct invocations) arrive as CloudEvents.
    return jsonify(received=request.headers.get("ce-type"))
