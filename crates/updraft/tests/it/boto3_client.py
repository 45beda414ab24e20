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
    out["event"] = lam.invoke(FunctionName=name, Qualifier=qualifiers[0], InvocationType="Event", Payload="{}")[
        "StatusCode"
    ]
elif scenario == "control":
    # A function made, changed, published and removed through Lambda's control plane,
    # as a deploy script for AWS does it; `manifest_made` is a function from a manifest.
    import hashlib
    import io
    import zipfile

    manifest_made = sys.argv[3]

    def package(greeting):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(
                "app.py",
                "import os\n"
                "def handler(event, context):\n"
                f"    return {{'greeting': os.environ.get('GREETING', {greeting!r}), "
                "'version': context.function_version, 'memory': context.memory_limit_in_mb}\n",
            )
        return buffer.getvalue()

    def config_of(c):
        keys = ["FunctionName", "FunctionArn", "Runtime", "Handler", "MemorySize", "Timeout", "Version",
                "Description", "State", "LastUpdateStatus", "CodeSha256", "CodeSize", "RevisionId", "PackageType"]
        return {k: c.get(k) for k in keys} | {"Environment": c.get("Environment", {}).get("Variables")}

    first = package("from the code")
    made = lam.create_function(
        FunctionName="made", Runtime="python3.12", Role="arn:aws:iam::000000000000:role/lambda-basic",
        Handler="app.handler", Code={"ZipFile": first}, Description="made by boto3", Timeout=5,
        MemorySize=256, Environment={"Variables": {"GREETING": "one"}},
    )
    out["created"] = config_of(made)
    out["first_sha256"] = base64.b64encode(hashlib.sha256(first).digest()).decode()
    out["first_size"] = len(first)
    lam.get_waiter("function_active_v2").wait(FunctionName="made", WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    out["invoked"] = invoke(lam, FunctionName="made", Payload="{}")
    got = lam.get_function(FunctionName="made")
    out["got"] = config_of(got["Configuration"]) | {"code": got["Code"]}

    updated = lam.update_function_configuration(
        FunctionName="made", MemorySize=512, Environment={"Variables": {"GREETING": "two"}}
    )
    out["updated"] = config_of(updated)
    lam.get_waiter("function_updated_v2").wait(FunctionName="made", WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    out["invoked_updated"] = invoke(lam, FunctionName="made", Payload="{}")
    out["stale_revision"] = error(lambda: lam.update_function_configuration(
        FunctionName="made", Timeout=9, RevisionId=made["RevisionId"]))

    second = package("from new code")
    coded = lam.update_function_code(FunctionName="made", ZipFile=second, Publish=True)
    out["coded"] = config_of(coded)
    out["second_sha256"] = base64.b64encode(hashlib.sha256(second).digest()).decode()
    lam.get_waiter("function_updated_v2").wait(FunctionName="made", WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    out["published"] = config_of(lam.publish_version(FunctionName="made", CodeSha256=coded["CodeSha256"]))
    out["publish_wrong_sha"] = error(lambda: lam.publish_version(FunctionName="made", CodeSha256="x"))
    out["versions"] = [v["Version"] for v in lam.list_versions_by_function(FunctionName="made")["Versions"]]
    out["version_1"] = config_of(lam.get_function_configuration(FunctionName="made", Qualifier="1"))
    out["invoked_1"] = invoke(lam, FunctionName="made", Qualifier="1", Payload="{}")
    out["invoked_latest"] = invoke(lam, FunctionName="made", Payload="{}")

    lam.put_function_concurrency(FunctionName="made", ReservedConcurrentExecutions=5)
    out["concurrency"] = lam.get_function_concurrency(FunctionName="made").get("ReservedConcurrentExecutions")
    out["concurrency_in_get"] = lam.get_function(FunctionName="made").get("Concurrency")
    lam.delete_function_concurrency(FunctionName="made")
    out["concurrency_deleted"] = lam.get_function_concurrency(FunctionName="made").get("ReservedConcurrentExecutions")

    out["no_invoke_config"] = error(lambda: lam.get_function_event_invoke_config(FunctionName="made"))
    lam.put_function_event_invoke_config(
        FunctionName="made", MaximumRetryAttempts=0, MaximumEventAgeInSeconds=120,
        DestinationConfig={"OnFailure": {"Destination": "arn:aws:sns:us-east-1:000000000000:made-failures"}},
    )
    lam.update_function_event_invoke_config(FunctionName="made", MaximumRetryAttempts=1)
    got = lam.get_function_event_invoke_config(FunctionName="made")
    out["invoke_config"] = {k: got.get(k) for k in ["MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig"]}
    out["bad_invoke_config"] = error(lambda: lam.put_function_event_invoke_config(
        FunctionName="made", DestinationConfig={"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:000000000000:q"}}))
    lam.delete_function_event_invoke_config(FunctionName="made")
    out["invoke_config_deleted"] = error(lambda: lam.get_function_event_invoke_config(FunctionName="made"))

    pages = lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 1})
    out["listed"] = [[f["FunctionName"] for f in page["Functions"]] for page in pages]
    out["manifest_made"] = config_of(lam.get_function(FunctionName=manifest_made)["Configuration"])

    out["exists"] = error(lambda: lam.create_function(
        FunctionName="made", Runtime="python3.12", Role="arn:aws:iam::000000000000:role/r",
        Handler="app.handler", Code={"ZipFile": first}))
    out["java"] = error(lambda: lam.create_function(
        FunctionName="javaish", Runtime="java21", Role="arn:aws:iam::000000000000:role/r",
        Handler="a.B::handle", Code={"ZipFile": first}))
    out["not_a_zip"] = error(lambda: lam.create_function(
        FunctionName="broken", Runtime="python3.12", Role="arn:aws:iam::000000000000:role/r",
        Handler="app.handler", Code={"ZipFile": b"this is not a zip"}))
    out["capitals"] = error(lambda: lam.create_function(
        FunctionName="MyFunction", Runtime="python3.12", Role="arn:aws:iam::000000000000:role/r",
        Handler="app.handler", Code={"ZipFile": first}))
    out["broken_listed"] = "broken" in [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    out["s3"] = error(lambda: lam.create_function(
        FunctionName="froms3", Runtime="python3.12", Role="arn:aws:iam::000000000000:role/r",
        Handler="app.handler", Code={"S3Bucket": "my-bucket", "S3Key": "code.zip"}))
    out["too_much_memory"] = error(lambda: lam.update_function_configuration(FunctionName="made", MemorySize=20480))
    out["missing"] = error(lambda: lam.get_function(FunctionName="nope"))
elif scenario == "aliases":
    # Aliases of a function with versions 1 and 2: one version, then a weighted split.
    import collections
    name = sys.argv[3]

    def alias_of(a):
        return {k: a.get(k) for k in ["AliasArn", "Name", "FunctionVersion", "Description", "RoutingConfig"]}

    created = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1", Description="what users get")
    out["created"] = alias_of(created)
    out["invoked"] = invoke(lam, FunctionName=name, Qualifier="live", Payload="{}")
    out["invoked_by_name"] = invoke(lam, FunctionName=f"{name}:live", Payload="{}")
    out["function_by_alias"] = lam.get_function(FunctionName=name, Qualifier="live")["Configuration"]["Version"]
    out["exists"] = error(lambda: lam.create_alias(FunctionName=name, Name="live", FunctionVersion="2"))
    out["no_version"] = error(lambda: lam.create_alias(FunctionName=name, Name="other", FunctionVersion="9"))
    out["numeric"] = error(lambda: lam.create_alias(FunctionName=name, Name="12", FunctionVersion="1"))

    updated = lam.update_alias(
        FunctionName=name, Name="live", RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}}
    )
    out["updated"] = alias_of(updated)
    out["stale"] = error(lambda: lam.update_alias(
        FunctionName=name, Name="live", FunctionVersion="2", RevisionId=created["RevisionId"]))
    ran = collections.Counter(
        invoke(lam, FunctionName=name, Qualifier="live", Payload="{}")["version"] for _ in range(200)
    )
    out["split"] = dict(ran)
    out["got"] = alias_of(lam.get_alias(FunctionName=name, Name="live"))

    lam.create_alias(FunctionName=name, Name="latest", FunctionVersion="$LATEST")
    out["latest"] = invoke(lam, FunctionName=name, Qualifier="latest", Payload="{}")
    out["listed"] = [a["Name"] for a in lam.list_aliases(FunctionName=name)["Aliases"]]
    out["listed_v1"] = [a["Name"] for a in lam.list_aliases(FunctionName=name, FunctionVersion="1")["Aliases"]]
    lam.delete_alias(FunctionName=name, Name="live")
    out["deleted"] = error(lambda: lam.get_alias(FunctionName=name, Name="live"))
    out["invoke_deleted"] = error(lambda: lam.invoke(FunctionName=name, Qualifier="live", Payload="{}"))
elif scenario == "create-alias":
    name, alias, version = sys.argv[3], sys.argv[4], sys.argv[5]
    out["alias"] = lam.create_alias(FunctionName=name, Name=alias, FunctionVersion=version)["AliasArn"]
elif scenario == "get-alias":
    name, alias = sys.argv[3], sys.argv[4]
    out["version"] = lam.get_alias(FunctionName=name, Name=alias)["FunctionVersion"]
elif scenario == "recursion":
    name, setting = sys.argv[3], sys.argv[4]
    out["before"] = lam.get_function_recursion_config(FunctionName=name)["RecursiveLoop"]
    lam.put_function_recursion_config(FunctionName=name, RecursiveLoop=setting)
    out["after"] = lam.get_function_recursion_config(FunctionName=name)["RecursiveLoop"]
elif scenario == "stream":
    # InvokeWithResponseStream, the events as they come; with a release URL, fetched
    # once the first chunk is here (the function ends its answer only then).
    import urllib.request

    name, payload = sys.argv[3], sys.argv[4]
    release = sys.argv[5] if len(sys.argv) > 5 else None
    response = lam.invoke_with_response_stream(FunctionName=name, Payload=payload)
    out["version"] = response["ExecutedVersion"]
    out["content_type"] = response["ResponseStreamContentType"]
    out["chunks"] = []
    for event in response["EventStream"]:
        if "PayloadChunk" in event:
            out["chunks"].append(event["PayloadChunk"]["Payload"].decode())
            if release and len(out["chunks"]) == 1:
                urllib.request.urlopen(release, timeout=10).read()
        elif "InvokeComplete" in event:
            out["complete"] = event["InvokeComplete"]
elif scenario == "stream-tail":
    # InvokeWithResponseStream with LogType Tail: the log's end in InvokeComplete.
    name, payload = sys.argv[3], sys.argv[4]
    response = lam.invoke_with_response_stream(FunctionName=name, Payload=payload, LogType="Tail")
    for event in response["EventStream"]:
        if "InvokeComplete" in event:
            out["complete"] = event["InvokeComplete"]
            out["log"] = base64.b64decode(event["InvokeComplete"].get("LogResult", "")).decode()
elif scenario == "delete":
    name = sys.argv[3]
    lam.delete_function(FunctionName=name)
    out["deleted"] = error(lambda: lam.get_function(FunctionName=name))
    out["invoke_deleted"] = error(lambda: lam.invoke(FunctionName=name, Payload="{}"))
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
