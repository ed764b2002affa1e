"""An aiosmtpd server for the interop tests (tests/api/interop.rs and interop_faults.rs).

Usage: aiosmtpd_peer.py DIR MODE   (MODE: starttls | tls)
Reads DIR/cert.pem and DIR/key.pem, accepts AUTH PLAIN/LOGIN for $PEER_USER/$PEER_PASSWORD
(a real check), appends each message to DIR/messages.jsonl (its exact bytes also to
DIR/raw/<n>.eml, named in the record's "raw", for DKIM checks) and prints "READY <port>". It also
appends every RCPT with the code of its reply to DIR/rcpts.jsonl, and to DIR/sessions.jsonl
{"event": "auth"} for each login (one per session) and {"event": "idle_close"} when it closes
an idle session. Faults, from the environment (none by default):
  PEER_REFUSE=a@x,b@y  RCPT TO those -> 550 5.1.1 <addr>: User unknown
  PEER_DEFER=a@x,b@y   RCPT TO those -> 451 4.2.1 Mailbox busy, try again later, for as long as
                       DIR/defer-off does not exist
  PEER_SIZE=n          announce SIZE n in EHLO and refuse larger messages (552)
  PEER_SMTPUTF8=1|0    offer SMTPUTF8 or not (aiosmtpd's default: not)
  PEER_IDLE_MS=n       close a session idle for n ms. aiosmtpd's SMTP `timeout` does this by
                       closing the transport without a word (no 421): see SMTP._timeout_cb
"""
import itertools
import json
import os
import socket
import ssl
import sys
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

out = Path(sys.argv[1])
mode = sys.argv[2]
USER = os.environ["PEER_USER"]
PASSWORD = os.environ["PEER_PASSWORD"]


def addresses(name):
    return {a.strip().lower() for a in os.environ.get(name, "").split(",") if a.strip()}


REFUSE = addresses("PEER_REFUSE")
# One event loop runs every session: next() is never interleaved.
RAW_NUMBERS = itertools.count()
DEFER = addresses("PEER_DEFER")


def append(name, record):
    with open(out / name, "a") as f:
        f.write(json.dumps(record) + "\n")


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        key = address.lower()
        if key in REFUSE:
            reply = f"550 5.1.1 <{address}>: User unknown"
        elif key in DEFER and not (out / "defer-off").exists():
            reply = "451 4.2.1 Mailbox busy, try again later"
        else:
            envelope.rcpt_tos.append(address)
            reply = "250 2.1.5 OK"
        append("rcpts.jsonl", {"address": address, "code": int(reply[:3]), "reply": reply})
        return reply

    async def handle_DATA(self, server, session, envelope):
        # The bytes as received (dot-stuffing undone): what a DKIM verifier at a receiver
        # sees. The decoded text in "data" may have lost bytes to "replace".
        (out / "raw").mkdir(exist_ok=True)
        name = f"raw/{next(RAW_NUMBERS):04d}.eml"
        (out / name).write_bytes(envelope.original_content or envelope.content)
        append(
            "messages.jsonl",
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "data": envelope.content.decode("utf-8", "replace"),
                "raw": name,
            },
        )
        return "250 2.0.0 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    # handled=False lets aiosmtpd send the 235/535 reply itself (with True it sends none).
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    ok = auth_data.login.decode() == USER and auth_data.password.decode() == PASSWORD
    append("sessions.jsonl", {"event": "auth", "ok": ok})
    return AuthResult(success=ok, handled=False)


class FaultSMTP(SMTP):
    def _timeout_cb(self):
        # aiosmtpd 1.4.6 closes the transport here without a reply.
        append("sessions.jsonl", {"event": "idle_close"})
        super()._timeout_cb()


class FaultController(Controller):
    def factory(self):
        return FaultSMTP(self.handler, **self.SMTP_kwargs)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(out / "cert.pem", out / "key.pem")

common = dict(hostname="127.0.0.1", port=0, authenticator=authenticator, auth_exclude_mechanism=["CRAM-MD5"])
if os.environ.get("PEER_SIZE"):
    common["data_size_limit"] = int(os.environ["PEER_SIZE"])
if os.environ.get("PEER_SMTPUTF8"):
    common["enable_SMTPUTF8"] = os.environ["PEER_SMTPUTF8"] == "1"
if os.environ.get("PEER_IDLE_MS"):
    # Forwarded to aiosmtpd.smtp.SMTP(timeout=...), in seconds, restarted by every command.
    common["timeout"] = int(os.environ["PEER_IDLE_MS"]) / 1000
if mode == "starttls":
    controller = FaultController(Handler(), tls_context=context, require_starttls=True, auth_require_tls=True, **common)
else:
    controller = FaultController(Handler(), ssl_context=context, auth_require_tls=False, **common)

# Port 0 picks a free port; Controller's readiness probe needs a real one, so bind first.
probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
controller.port = port
controller.start()
print(f"READY {port}", flush=True)
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    controller.stop()
