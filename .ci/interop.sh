#!/usr/bin/env bash
# Installs the independent peers of the interop leg (Python aiosmtpd and dkimpy, Node
# smtp-server and oauth2-mock-server) into target/interop, from the pinned versions in
# tests/interop/, and Postfix's smtp-sink from Debian (apt-get, as root) when
# /usr/sbin/smtp-sink is missing.
# Idempotent; prints the directory on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$PWD/target/interop"
mkdir -p "$dir"
if [ ! -x "$dir/venv/bin/python" ] || ! "$dir/venv/bin/python" -c "import aiosmtpd, trustme, dkim" 2>/dev/null; then
  echo "installing aiosmtpd, trustme and dkimpy" >&2
  python3 -m venv "$dir/venv" >&2
  "$dir/venv/bin/pip" install -q -r tests/interop/requirements.txt >&2
fi
# The npm peers at the versions pinned in tests/interop/package.json, all installed together
# (exact versions) when one is missing or at another version: a machine that has them needs no
# network.
# oauth2-mock-server 8.x declares Node ^20.19 || ^22.12 || ^24 (Debian 12's own nodejs is 18).
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "the interop peers need Node 20.19 or later; this is $(node --version)" >&2
  exit 1
fi
specs=()
stale=0
for package in smtp-server oauth2-mock-server; do
  version=$(sed -n "s/.*\"$package\": \"\(.*\)\".*/\1/p" tests/interop/package.json)
  [ -n "$version" ] || { echo "no pinned $package in tests/interop/package.json" >&2; exit 1; }
  specs+=("$package@$version")
  installed=$(node -p "require('$dir/node/node_modules/$package/package.json').version" 2>/dev/null || true)
  [ "$installed" = "$version" ] || stale=1
done
if [ "$stale" = 1 ]; then
  echo "installing ${specs[*]}" >&2
  npm install --no-package-lock --save-exact --no-audit --no-fund --prefix "$dir/node" "${specs[@]}" >&2
fi
# Postfix's smtp-sink, for faults the other peers cannot make (421 and a drop at a chosen
# command, a drop after the data). Debconf's "No configuration": no daemon, nothing on port 25.
if [ ! -x /usr/sbin/smtp-sink ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "smtp-sink is missing: install Debian's postfix as root (this script does, run as root)" >&2
    exit 1
  fi
  echo "installing postfix (for smtp-sink)" >&2
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections >&2
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix >&2
fi
echo "$dir"
