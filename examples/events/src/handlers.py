"""Handlers of the events example: each prints what it got, as a real one would act on it."""

import json


def welcome(event, context):
    # A topic message arrives as an SNS record; the message is its text.
    for record in event["Records"]:
        user = json.loads(record["Sns"]["Message"])
        print(f"sending the welcome email to {user['email']}")
    return {"sent": len(event["Records"])}


def resize(event, context):
    # A batch of queue messages arrives as an SQS event. Failing only some of them
    # (batchItemFailures) leaves those to come back after the visibility timeout.
    failures = []
    for record in event["Records"]:
        job = json.loads(record["body"])
        if "image" not in job:
            print(f"job {record['messageId']} names no image")
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        print(f"resizing {job['image']}")
    return {"batchItemFailures": failures}


def nightly(event, context):
    # A schedule tick arrives as an EventBridge scheduled event.
    print(f"nightly report for the tick at {event['time']}")


def ci(event, context):
    # A webhook request arrives as an API Gateway request, delivered after the 202.
    print(f"CI hook: {event['body']}")


class PaymentServiceBusy(Exception):
    pass


def charge(event, context):
    if event.get("amount", 0) <= 0:
        raise ValueError("nothing to charge")
    print(f"charging {event['amount']} for order {event['order']}")
    return {"charged": event["amount"]}


def receipt(event, context):
    print(f"receipt for order {event['order']}: {event['payment']['charged']}")
    return {"sent": True}
