"""An aiosmtpd server for the interop tests.

Usage: aiosmtpd_peer.py DIR MODE   (MODE: starttls | tls)
Reads DIR/cert.pem and DIR/key.pem, accepts AUTH PLAIN/LOGIN for $PEER_USER/$PEER_PASSWORD
(a real check), appends each message to DIR/messages.jsonl and prints "READY <port>".
"""
import json
import os
import ssl
import sys
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

out = Path(sys.argv[1])
mode = sys.argv[2]
USER = os.environ["PEER_USER"]
PASSWORD = os.environ["PEER_PASSWORD"]


class Handler:
    async def handle_DATA(self, server, session, envelope):
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
        }
        with open(out / "messages.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        return "250 2.0.0 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    # handled=False lets aiosmtpd send the 235/535 reply itself (with True it sends none).
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    ok = auth_data.login.decode() == USER and auth_data.password.decode() == PASSWORD
    return AuthResult(success=ok, handled=False)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(out / "cert.pem", out / "key.pem")

common = dict(hostname="127.0.0.1", port=0, authenticator=authenticator, auth_exclude_mechanism=["CRAM-MD5"])
if mode == "starttls":
    controller = Controller(Handler(), tls_context=context, require_starttls=True, auth_require_tls=True, **common)
else:
    # Implicit TLS: the session is encrypted from the first byte.
    controller = Controller(Handler(), ssl_context=context, auth_require_tls=False, **common)

# Port 0 picks a free port; Controller's readiness probe needs a real one, so bind first.
import socket

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
