"""The sign-up chain's handlers (AWS Lambda Python handlers).

Deliveries are at least once: a topic message or a workflow step may run again after
a crash or a retry. Each effect is therefore keyed in the database by the user's
email address, so running twice changes nothing the second time.
"""

import hashlib
import json
import os
import smtplib
import sys
import urllib.parse
import urllib.request
from email.message import EmailMessage

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "vendor"))


class BadSignup(Exception):
    """The request is not a sign-up."""


class DatabaseBusy(Exception):
    """The database did not answer in time; the workflow retries the step."""


class SignupRefused(Exception):
    """This address may not sign up."""


class MailServerAway(Exception):
    """The mail server did not take the message; the workflow retries the step."""


# ---- POST /signup -------------------------------------------------------------------


def signup(event, context):
    """Checks the form and publishes user.signed_up; answers 202 once Updraft has
    stored the message for every subscriber."""
    try:
        user = _sign_up_form(event)
    except BadSignup as error:
        return _json(400, {"error": str(error)})
    published = _updraft("/v1/topics/user.signed_up", user)
    return _json(202, {"email": user["email"], "message": published["message_id"]})


def _sign_up_form(event):
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        import base64

        body = base64.b64decode(body).decode()
    try:
        form = json.loads(body)
    except ValueError:
        form = None
    if not isinstance(form, dict):
        raise BadSignup('send a JSON object: {"email": "...", "name": "..."}')
    email = str(form.get("email", "")).strip().lower()
    name = str(form.get("name", "")).strip()
    if email.count("@") != 1 or "." not in email.split("@")[1]:
        raise BadSignup(f"{email!r} is not an email address")
    return {"email": email, "name": name or email.split("@")[0]}


def _updraft(path, document):
    """POSTs to this Updraft server with the token the function's grants gave it,
    passing the invocation's trace on (as the AWS SDKs do inside Lambda), so the whole
    chain is one trace in `updraft traces`."""
    headers = {"Authorization": "Bearer " + os.environ["UPDRAFT_TOKEN"], "Content-Type": "application/json"}
    if os.environ.get("_X_AMZN_TRACE_ID"):
        headers["X-Amzn-Trace-Id"] = os.environ["_X_AMZN_TRACE_ID"]
    request = urllib.request.Request(
        os.environ["UPDRAFT_API_URL"] + path, data=json.dumps(document).encode(), method="POST", headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _json(status, document):
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(document)}


# ---- user.signed_up -----------------------------------------------------------------


def enroll(event, context):
    """Starts the onboarding workflow for each sign-up (an SNS record per message)."""
    for record in event["Records"]:
        user = json.loads(record["Sns"]["Message"])
        # A message published by hand may carry only the address, as /signup's form may.
        user.setdefault("name", str(user.get("email", "")).split("@")[0])
        execution = _updraft("/v1/workflows/onboarding/executions", user)
        print(f"started onboarding execution {execution['execution_id']} for {user['email']}")


# ---- the onboarding workflow --------------------------------------------------------


def welcome_email(event, context):
    """The workflow's SendWelcome step: one welcome mail per user. The address's row is
    locked while the mail goes out and marked sent in the same transaction, so a
    repeat (or a second execution for the same user, running at the same time) waits,
    finds it sent and stops. A failed send rolls back and the step is retried."""
    with _database() as db:
        db.run("INSERT INTO welcome_emails (email) VALUES (:email) ON CONFLICT DO NOTHING", email=event["email"])
        db.run("SET lock_timeout = '10s'")
        db.run("START TRANSACTION")
        [[sent_at]] = db.run("SELECT sent_at FROM welcome_emails WHERE email = :email FOR UPDATE", email=event["email"])
        if sent_at is not None:
            db.run("ROLLBACK")
            print(f"{event['email']} was welcomed at {sent_at}; not again")
            return {"sent": False}
        try:
            _send_welcome(event)
        except (OSError, smtplib.SMTPException) as error:
            raise MailServerAway(f"the mail server did not take the welcome mail: {error}")
        db.run("UPDATE welcome_emails SET sent_at = now() WHERE email = :email", email=event["email"])
        db.run("COMMIT")
    print(f"welcomed {event['email']}")
    return {"sent": True}


def _send_welcome(user):
    message = EmailMessage()
    message["From"] = "Updraft sign-up <hello@signup.example>"
    message["To"] = user["email"]
    message["Subject"] = f"Welcome, {user['name']}!"
    # One Message-ID per user: a mail that does go out twice (the server took it, the
    # function died before recording that) is one message to the reader's mail client.
    message["Message-ID"] = f"<welcome.{hashlib.sha256(user['email'].encode()).hexdigest()[:32]}@signup.example>"
    message.set_content(f"Hello {user['name']},\n\nyour account is ready.\n")
    host, _, port = os.environ["SMTP_SERVER"].partition(":")
    smtp = smtplib.SMTP(host, int(port or 25), timeout=10)
    try:
        smtp.send_message(message)
    finally:
        # The mail is accepted once DATA is answered; a failed QUIT changes nothing.
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


def record_user(event, context):
    """The workflow's RecordUser step: one row per email address."""
    if event["email"].endswith("@refused.example"):
        raise SignupRefused(f"{event['email']} may not sign up")
    import pg8000

    with _database() as db:
        try:
            # Waiting on a lock longer than this counts as busy: the workflow retries.
            db.run("SET lock_timeout = '500ms'")
            created = db.run(
                "INSERT INTO users (email, name) VALUES (:email, :name) ON CONFLICT (email) DO NOTHING RETURNING email",
                email=event["email"],
                name=event["name"],
            )
        except pg8000.DatabaseError as error:
            if "55P03" in str(error):  # lock_not_available
                raise DatabaseBusy(f"the users table is locked: {error}")
            raise
    print(f"recorded {event['email']}" if created else f"{event['email']} was already recorded")
    return {"email": event["email"], "created": bool(created)}


def refuse_signup(event, context):
    """The workflow's failure path: the refusal is written down, once."""
    with _database() as db:
        db.run(
            "INSERT INTO refused_signups (email, reason) VALUES (:email, :reason) ON CONFLICT DO NOTHING",
            email=event["email"],
            reason=event.get("error", {}).get("Cause", "refused"),
        )
    print(f"refused {event['email']}")


# ---- the database -------------------------------------------------------------------

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS users (email TEXT PRIMARY KEY, name TEXT NOT NULL, "
    "created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS welcome_emails (email TEXT PRIMARY KEY, sent_at TIMESTAMPTZ)",
    "CREATE TABLE IF NOT EXISTS refused_signups (email TEXT PRIMARY KEY, reason TEXT NOT NULL)",
]
_schema_ready = False


class _database:
    """A connection to DATABASE_URL (postgres://user[:password]@host[:port]/db), the
    schema made on first use (under an advisory lock: instances start together)."""

    def __enter__(self):
        global _schema_ready
        import pg8000.native

        url = urllib.parse.urlparse(os.environ["DATABASE_URL"])
        self.connection = pg8000.native.Connection(
            url.username or "postgres",
            password=url.password,
            host=url.hostname or "127.0.0.1",
            port=url.port or 5432,
            database=url.path.lstrip("/") or "postgres",
            timeout=10,
        )
        if not _schema_ready:
            self.connection.run("SELECT pg_advisory_lock(20261127)")
            try:
                for statement in SCHEMA:
                    self.connection.run(statement)
            finally:
                self.connection.run("SELECT pg_advisory_unlock(20261127)")
            _schema_ready = True
        return self.connection

    def __exit__(self, *exc):
        self.connection.close()
        return False
