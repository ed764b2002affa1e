#!/usr/bin/env bash
# Admin pages bench: bash bench/ui.sh [CHANNELS]   (default 50)
#
# Starts the release binary on a fresh SQLite data dir, creates a tenant with CHANNELS
# domain channels, signs in through the sign-in form like a browser, then loads with wrk
# (2 threads, 16 connections, 10 s each): the channel list page, the same list as JSON
# (the page's own cost is the difference), and the stylesheet (static, for a ceiling).
# Installs wrk from Debian's packages when missing. BENCH_BIN picks another binary.
set -euo pipefail

N=${1:-50}
case $N in '' | *[!0-9]*) echo "usage: bash bench/ui.sh [CHANNELS]" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
if ! command -v wrk > /dev/null; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk > /dev/null
fi
BIN=${BENCH_BIN:-target/release/switchboard}
[ -n "${BENCH_BIN:-}" ] || cargo build --release --quiet

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
SWITCHBOARD_DATA_DIR="$dir" SWITCHBOARD_BIND="127.0.0.1:$port" RUST_LOG=warn "$BIN" serve > "$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf "$base/readyz" > /dev/null && break; sleep 0.2; done

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
token=$(curl -sf -X POST "$base/v1/tenants" -H "Authorization: Bearer $(cat "$dir/operator-token")" \
  -H 'Content-Type: application/json' -d '{"name":"Bench","admin_email":"admin@bench.test"}' \
  | json "['admin']['token']")
auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')
curl -sf -X PATCH "$base/v1/tenant" "${auth[@]}" -d '{"domains":["bench.test"]}' > /dev/null
for i in $(seq "$N"); do
  curl -sf -o /dev/null -X POST "$base/v1/channels" "${auth[@]}" -d "{\"name\":\"Relay $i\",
    \"kind\":\"smtp\",\"preset\":\"sendgrid\",\"owner\":{\"tenant\":true},\"domains\":[\"bench.test\"],
    \"smtp\":{\"password\":\"SG.bench-key-$i\"}}"
done

jar="$dir/jar"
curl -sf -c "$jar" -b "$jar" "$base/ui/sign-in" > /dev/null
guard=$(awk '$6 == "sb_sign_in" {print $7}' "$jar")
curl -s -c "$jar" -b "$jar" -o /dev/null -X POST "$base/ui/sign-in" \
  --data-urlencode "token=$token" --data-urlencode "_csrf=$guard"
cookie=$(awk '$6 ~ /switchboard_session$/ {print $6 "=" $7}' "$jar")
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "$base/ui/channels")" = 200 ]

run() {
  local name=$1; shift
  wrk -t2 -c16 -d10s "$@" | awk -v name="$name" '
    /Latency/ {lat=$2} /Requests\/sec/ {rps=$2}
    END {printf "| %s | %s | %s |\n", name, rps, lat}'
}
echo "| what ($N channels) | requests/s | mean latency |"
echo "| --- | --- | --- |"
run "GET /ui/channels (page)" -H "Cookie: $cookie" "$base/ui/channels"
run "GET /v1/channels (JSON)" -H "Authorization: Bearer $token" "$base/v1/channels"
run "GET /ui/assets/app.css" "$base/ui/assets/app.css"
