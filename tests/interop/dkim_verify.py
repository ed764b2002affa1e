"""Verifies the DKIM signatures of one message with dkimpy, an implementation independent of
ours, for the interop tests (tests/api/interop_dkim.rs).

Usage: dkim_verify.py MESSAGE.eml RECORDS.json
RECORDS.json maps DNS names to TXT record values ({"s._domainkey.acme.test": "v=DKIM1; ..."}):
the records our store says to publish. Nothing else resolves (no network). Prints one JSON line
{"verified": bool, "signatures": [{tag: value}]} and exits 0; a crash exits non-zero.
"""
import json
import sys

import dkim
from dkim.util import parse_tag_value

message = open(sys.argv[1], "rb").read()
records = {name.lower().rstrip("."): value for name, value in json.load(open(sys.argv[2])).items()}


def dnsfunc(name, timeout=5):
    # dkimpy asks with the name as bytes, ending in a dot; None is "no such record".
    value = records.get(name.decode().lower().rstrip("."))
    return value.encode() if value is not None else None


verified = dkim.verify(message, dnsfunc=dnsfunc)
signatures = []
for name, value in dkim.DKIM(message).headers:
    if name.lower() == b"dkim-signature":
        tags = parse_tag_value(value)
        signatures.append({k.decode(): v.decode() for k, v in tags.items()})
print(json.dumps({"verified": bool(verified), "signatures": signatures}))
