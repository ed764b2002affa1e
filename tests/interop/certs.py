"""Mint a test CA and a server certificate for localhost / 127.0.0.1 into DIR.

Usage: certs.py DIR  ->  DIR/ca.pem, DIR/cert.pem, DIR/key.pem
"""
import sys
from pathlib import Path

import trustme

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
ca = trustme.CA()
server = ca.issue_cert("localhost", "127.0.0.1")
ca.cert_pem.write_to_path(str(out / "ca.pem"))
server.cert_chain_pems[0].write_to_path(str(out / "cert.pem"))
server.private_key_pem.write_to_path(str(out / "key.pem"))
