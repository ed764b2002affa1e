"""Verify a Switchboard webhook: Python 3, standard library only.

Every webhook carries a header

    Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=<...>]

where the HMAC key is your whole webhook secret ("whsec_...", prefix included) and the
signed message is the timestamp, a ".", then the raw request body. Accept the request
when any v1= entry matches: today there is one, but a header may carry more.

Verify the *raw* body bytes, before any JSON parsing: re-serialised JSON differs.

    # Flask
    from verify_webhook import verify, InvalidSignature

    @app.post("/switchboard")
    def switchboard_webhook():
        try:
            verify(os.environ["SWITCHBOARD_WEBHOOK_SECRET"],
                   request.headers.get("Switchboard-Signature", ""),
                   request.get_data())          # the raw bytes
        except InvalidSignature as e:
            return str(e), 400
        event = request.get_json()
        ...
        return "", 204

Command line (exit 0 and "valid", or exit 1 and the reason):

    SWITCHBOARD_WEBHOOK_SECRET=whsec_... python3 verify_webhook.py "$HEADER" < body.json
"""

import hashlib
import hmac
import os
import sys
import time

# Older or future timestamps are refused, so a captured request cannot be replayed later.
TOLERANCE_SECONDS = 300


class InvalidSignature(Exception):
    """The request did not come from Switchboard, was altered, or is too old."""


def verify(secret, header, body, tolerance=TOLERANCE_SECONDS, now=None):
    """Returns True if `header` signs `body` (bytes) with `secret`; raises InvalidSignature."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    timestamp, candidates = None, []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise InvalidSignature("malformed header: expected key=value pairs")
        if key == "t":
            # Digits only: int() would also take "+5", " 5" and "5_000".
            if timestamp is not None or not (value.isascii() and value.isdigit()):
                raise InvalidSignature("malformed header: bad t=")
            timestamp = value
        elif key == "v1":
            if len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
                raise InvalidSignature("malformed header: v1= is not 64 hex digits")
            candidates.append(value.lower())
        # Other keys (a future v2=) are ignored.
    if timestamp is None or not candidates:
        raise InvalidSignature("malformed header: needs t= and v1=")

    expected = hmac.new(
        secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256
    ).hexdigest()
    # compare_digest takes the same time wherever the strings differ; check every entry.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise InvalidSignature("signature mismatch (wrong secret, or the body was altered)")

    # Checked after the signature, so "too old" only ever describes a genuine request.
    now = int(time.time()) if now is None else now
    if abs(now - int(timestamp)) > tolerance:
        raise InvalidSignature(
            f"timestamp {timestamp} is more than {tolerance} s from now ({now})"
        )
    return True


def main():
    secret = os.environ.get("SWITCHBOARD_WEBHOOK_SECRET")
    if not secret or len(sys.argv) != 2:
        print(
            "usage: SWITCHBOARD_WEBHOOK_SECRET=whsec_... verify_webhook.py HEADER < BODY",
            file=sys.stderr,
        )
        return 2
    body = sys.stdin.buffer.read()
    try:
        verify(secret, sys.argv[1], body)
    except InvalidSignature as e:
        print(e)
        return 1
    print("valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
