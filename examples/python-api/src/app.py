"""A bookmarks API as an AWS Lambda handler for API Gateway HTTP APIs.

State lives in the instance's memory: it survives while the instance stays warm, as
on Lambda, and is lost when it scales to zero. A real service would keep it in a
database.
"""

import json
import os

BOOKMARKS = {}
NEXT_ID = [1]


def respond(status, body=None, headers=None):
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": json.dumps(body) if body is not None else "",
    }


def handler(event, context):
    method = event["requestContext"]["http"]["method"]
    route = event["routeKey"]  # e.g. "GET /bookmarks/{id}"
    print(f"{method} {event['rawPath']} ({context.aws_request_id})")

    if route == "GET /bookmarks":
        tag = (event.get("queryStringParameters") or {}).get("tag")
        items = [b for b in BOOKMARKS.values() if tag is None or tag in b["tags"]]
        return respond(200, {"bookmarks": items, "service": os.environ["SERVICE_NAME"]})

    if route == "POST /bookmarks":
        try:
            payload = json.loads(event.get("body") or "")
            url = payload["url"]
        except (ValueError, KeyError, TypeError):
            return respond(400, {"error": "send JSON with a `url`"})
        bookmark = {"id": str(NEXT_ID[0]), "url": url, "tags": payload.get("tags", [])}
        NEXT_ID[0] += 1
        BOOKMARKS[bookmark["id"]] = bookmark
        return respond(201, bookmark, {"location": f"/bookmarks/{bookmark['id']}"})

    bookmark_id = (event.get("pathParameters") or {}).get("id")
    if bookmark_id not in BOOKMARKS:
        return respond(404, {"error": f"no bookmark {bookmark_id}"})
    if route == "DELETE /bookmarks/{id}":
        del BOOKMARKS[bookmark_id]
        return respond(204)
    return respond(200, BOOKMARKS[bookmark_id])
