#!/usr/bin/env bash
# Installs the independent SMTP servers of the interop leg (Python aiosmtpd, Node
# smtp-server) into target/interop, from the pinned versions in tests/interop/. Idempotent;
# prints the directory on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$PWD/target/interop"
mkdir -p "$dir"
if [ ! -x "$dir/venv/bin/python" ] || ! "$dir/venv/bin/python" -c "import aiosmtpd, trustme" 2>/dev/null; then
  echo "installing aiosmtpd and trustme" >&2
  python3 -m venv "$dir/venv" >&2
  "$dir/venv/bin/pip" install -q -r tests/interop/requirements.txt >&2
fi
if [ ! -d "$dir/node/node_modules/smtp-server" ]; then
  echo "installing smtp-server" >&2
  version=$(sed -n 's/.*"smtp-server": "\(.*\)".*/\1/p' tests/interop/package.json)
  npm install --no-package-lock --no-audit --no-fund --prefix "$dir/node" "smtp-server@$version" >&2
fi
echo "$dir"
