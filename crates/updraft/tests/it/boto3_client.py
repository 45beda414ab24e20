"""Drives Updraft's Lambda-compatible API with boto3, unchanged, and prints what it saw
as JSON for the Rust test to check. Usage: boto3_client.py ENDPOINT SCENARIO ARGS..."""

import base64
import json
import sys
import threading

import boto3
import botocore.config
from botocore.exceptions import ClientError

endpoint, scenario = sys.argv[1], sys.argv[2]


def client(key_id=None, secret=None):
    import os
    return boto3.client(
        "lambda",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id or os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or os.environ["AWS_SECRET_ACCESS_KEY"],
        config=botocore.config.Config(retries={"max_attempts": 0}),
    )


def error(fn):
    try:
        fn()
    except ClientError as e:
        return {
            "code": e.response["Error"]["Code"],
            "message": e.response["Error"].get("Message"),
            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
            "class": type(e).__name__,
            "retry_after": e.response["ResponseMetadata"]["HTTPHeaders"].get("retry-after"),
        }
    return None


def invoke(lam, **kwargs):
    response = lam.invoke(**kwargs)
    payload = response["Payload"].read()
    return {
        "status": response["StatusCode"],
        "version": response.get("ExecutedVersion"),
        "function_error": response.get("FunctionError"),
        "log": base64.b64decode(response["LogResult"]).decode() if "LogResult" in response else None,
        "payload": json.loads(payload) if payload else None,
        "request_id": response["ResponseMetadata"]["RequestId"],
    }


lam = client()
out = {}
if scenario == "invoke":
    name, version = sys.argv[3], sys.argv[4]
    job = json.dumps({"key": "cat.png", "width": 2048, "height": 1024})
    out["sync"] = invoke(lam, FunctionName=name, Payload=job)
    out["tail"] = invoke(lam, FunctionName=name, Payload=job, LogType="Tail")
    out["qualified"] = invoke(lam, FunctionName=name, Payload=job, Qualifier=version)
    out["arn"] = invoke(lam, FunctionName=f"arn:aws:lambda:us-east-1:000000000000:function:{name}", Payload=job)
    out["dry_run"] = lam.invoke(FunctionName=name, InvocationType="DryRun")["StatusCode"]
    out["event"] = lam.invoke(FunctionName=name, InvocationType="Event", Payload=job)["StatusCode"]
    out["function_error"] = invoke(lam, FunctionName=name, Payload=json.dumps({"nokey": 1}))
    out["not_found"] = error(lambda: lam.invoke(FunctionName="no-such-function", Payload="{}"))
    out["old_version"] = error(lambda: lam.invoke(FunctionName=name, Qualifier="999", Payload="{}"))
    out["bad_json"] = error(lambda: lam.invoke(FunctionName=name, Payload=b"{not json"))
    out["not_found_class"] = type(lam.exceptions.ResourceNotFoundException).__name__
    try:
        lam.invoke(FunctionName="no-such-function", Payload="{}")
    except lam.exceptions.ResourceNotFoundException:
        out["not_found_is_modeled"] = True
    out["bad_secret"] = error(lambda: client(secret="x" * 40).invoke(FunctionName=name, Payload="{}"))
    out["unknown_key"] = error(lambda: client(key_id="AKUPNOSUCHKEY0000000").invoke(FunctionName=name, Payload="{}"))
elif scenario == "versions":
    # Each qualifier, as Qualifier and as name:qualifier; then an Event to the first.
    name, qualifiers = sys.argv[3], sys.argv[4:]

    def outcome(**kwargs):
        try:
            return invoke(lam, Payload="{}", **kwargs)
        except ClientError as e:
            return {"code": e.response["Error"]["Code"], "message": e.response["Error"].get("Message")}

    for qualifier in qualifiers:
        out[qualifier] = outcome(FunctionName=name, Qualifier=qualifier)
        out[name + ":" + qualifier] = outcome(FunctionName=f"{name}:{qualifier}")
    out["event"] = error(
        lambda: lam.invoke(FunctionName=name, Qualifier=qualifiers[0], InvocationType="Event", Payload="{}")
    )
elif scenario == "status":
    # One plain invoke: its status code, or the error's code.
    try:
        out["status"] = lam.invoke(FunctionName=sys.argv[3], Payload="{}")["StatusCode"]
    except ClientError as e:
        out["error"] = e.response["Error"]["Code"]
elif scenario == "context":
    name = sys.argv[3]
    context = base64.b64encode(json.dumps({"custom": {"tenant": "acme"}, "env": {"app": "mobile"}}).encode()).decode()
    out["context"] = invoke(lam, FunctionName=name, Payload="{}", ClientContext=context)
elif scenario == "throttle":
    # Two invocations of a function allowed one at a time: one of them is throttled.
    name = sys.argv[3]
    results = []

    def call():
        try:
            results.append(invoke(client(), FunctionName=name, Payload=json.dumps({"sleep": 1.5})))
        except client().exceptions.TooManyRequestsException as e:
            results.append({"throttled": e.response["Error"]["Code"],
                            "reason": e.response.get("Reason"),
                            "retry_after": e.response["ResponseMetadata"]["HTTPHeaders"].get("retry-after")})

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["results"] = results
print(json.dumps(out))
