"""Conformance fixture: a plain Lambda handler run by AWS's own Python runtime interface
client (awslambdaric, vendored into vendor/ by ../setup.sh) as a `provided` runtime."""


def handler(event, context):
    if isinstance(event, dict) and "fail" in event:
        raise ValueError(event["fail"])
    return {
        "client": "awslambdaric",
        # The context object's class proves which client built it.
        "context_class": f"{type(context).__module__}.{type(context).__qualname__}",
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "event": event,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
