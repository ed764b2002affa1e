#!/usr/bin/env bash
# End-to-end throughput bench: bash bench/run.sh [N]   (N messages of 2 KB, default 20000)
#
# 1. installs Postfix's smtp-sink/smtp-source when missing (no daemon, nothing on port 25);
# 2. builds the release binary and the driver (benches/e2e.rs) once;
# 3. starts one smtp-sink on a free loopback port, its running counter (-c) in a file;
# 4. raw comparison: smtp-source → smtp-sink, 20 sessions, 2 KB (reused connections, and a
#    new connection per message);
# 5. the driver on SQLite, then on PostgreSQL when `.ci/postgres.sh` finds or starts one
#    (a fresh schema per run; BENCH_PG_URL=postgres://… picks a server, BENCH_PG=0 skips);
# 6. prints a table: path, N, seconds, msg/s.
#
# Tuning for experiments: every SWITCHBOARD_* variable set here reaches the service, e.g.
#   SWITCHBOARD_DELIVERY_CONCURRENCY=128 bash bench/run.sh
# BENCH_ARGS="--batch 500 --concurrency 8 --pool-size 20" passes options to the driver.
# BENCH_BIN=/path/to/switchboard benchmarks that binary instead of target/release's.
# BENCH_QUOTA=1 adds a leg per database with a per-minute limit on the channel (every
# provider preset has limits; then each message takes quota, in its own transaction).
# BENCH_DKIM=1 adds two SQLite legs through the shared pool: unsigned, and DKIM-signed.
# See bench/README.md for what is measured and the numbers on this machine.
set -euo pipefail

N=${1:-20000}
case $N in '' | *[!0-9]*) echo "usage: bash bench/run.sh [N]" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

log() { printf '== %s\n' "$*" >&2; }

# --- 1. smtp-sink -----------------------------------------------------------------------
if ! command -v smtp-sink >/dev/null 2>&1 || ! command -v smtp-source >/dev/null 2>&1; then
  log "installing postfix (for smtp-sink and smtp-source; no daemon)"
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postfix >&2
fi
# "No configuration" leaves Postfix unconfigured and stopped; make sure of it.
if pidof /usr/lib/postfix/sbin/master >/dev/null 2>&1; then
  log "stopping the postfix daemon"
  $SUDO postfix stop >&2 || true
fi
if command -v ss >/dev/null 2>&1 && ss -ltnpH 'sport = :25' 2>/dev/null | grep -q master; then
  echo "warning: a postfix master still listens on port 25" >&2
fi

WORK=$(mktemp -d /tmp/switchboard-bench.XXXXXX)
SINK_PID=""
cleanup() {
  if [ -n "$SINK_PID" ]; then
    kill "$SINK_PID" 2>/dev/null || true
    wait "$SINK_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- 2. build -----------------------------------------------------------------------------
TARGET=${CARGO_TARGET_DIR:-target}
log "cargo build --release"
cargo build --release >&2
log "cargo bench --no-run --bench e2e"
cargo bench --no-run --bench e2e 2>&1 | tee "$WORK/build.log" >&2
DRIVER=$(sed -n 's/.*Executable .*(\(.*\)).*/\1/p' "$WORK/build.log" | tail -n 1)
[ -x "$DRIVER" ] || { echo "the driver was not built" >&2; exit 1; }
BIN=${BENCH_BIN:-$TARGET/release/switchboard}
# Private copies: another `cargo build` during the run cannot swap the binaries under us.
cp "$BIN" "$WORK/switchboard"
cp "$DRIVER" "$WORK/e2e"

# --- 3. the sink --------------------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
SINK_PORT=$(free_port)
SINK_USER=()
[ "$(id -u)" = 0 ] && SINK_USER=(-u nobody) # smtp-sink will not run as root
smtp-sink -c "${SINK_USER[@]}" "127.0.0.1:$SINK_PORT" 1024 >"$WORK/sink-counter" 2>"$WORK/sink.log" &
SINK_PID=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$SINK_PORT") 2>/dev/null && break
  sleep 0.05
done
log "smtp-sink on 127.0.0.1:$SINK_PORT (pid $SINK_PID)"

sink_count() { tr '\r' '\n' <"$WORK/sink-counter" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -n 1; }

RESULTS=()
# --- 4. raw comparison --------------------------------------------------------------------
raw() { # label, extra smtp-source options
  local label=$1
  shift
  local before after t0 t1
  before=$(sink_count)
  t0=$(date +%s.%N)
  smtp-source "$@" -m "$N" -s 20 -l 2048 -f bench@bench.test -t sink@example.com \
    "127.0.0.1:$SINK_PORT"
  t1=$(date +%s.%N)
  sleep 0.2
  after=$(sink_count)
  local got=$((${after:-0} - ${before:-0}))
  local secs rate
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  rate=$(awk -v n="$got" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
  log "$label: sink counted $got of $N in $secs s = $rate msg/s"
  local complete=ok
  [ "$got" = "$N" ] || complete="sink counted $got"
  RESULTS+=("$label	$N	$secs	$rate	-	$complete")
}
raw "raw smtp-source→smtp-sink, 20 reused conns" -d
raw "raw smtp-source→smtp-sink, new conn per msg"

# --- 5. the service -----------------------------------------------------------------------
status=0
leg() { # label, driver options
  local label=$1
  shift
  log "$label"
  local out="$WORK/leg.out"
  # shellcheck disable=SC2086
  "$WORK/e2e" --label "$label" --messages "$N" --binary "$WORK/switchboard" \
    --sink "127.0.0.1:$SINK_PORT" --sink-counter "$WORK/sink-counter" ${BENCH_ARGS:-} "$@" |
    tee "$out" >&2 || status=1
  local line
  line=$(sed -n 's/^RESULT\t//p' "$out" | tail -n 1)
  if [ -n "$line" ]; then
    # label N seconds msg/s accept-seconds accept-msg/s complete
    RESULTS+=("$(printf '%s\n' "$line" | awk -F'\t' -v OFS='\t' '{ print $1" (e2e)", $2, $3, $4, $6, $7 }')")
  else
    RESULTS+=("$label (e2e)	$N	-	failed	-	-")
  fi
}
machine_note() {
  # Other work on the machine's two cores skews every number: say how much there was.
  local busy
  busy=$(ps -eo pcpu=,comm= --sort=-pcpu | awk '$2 !~ /^(e2e|switchboard|smtp-sink|postgres|ps|awk)$/ && $1 > 5 { printf "%s %s%%, ", $2, $1 }')
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg)${busy:+; busy besides the bench: ${busy%, }}"
}
NOTE_BEFORE=$(machine_note)
log "machine: $NOTE_BEFORE"

leg sqlite

PG_URL=${BENCH_PG_URL:-}
if [ "${BENCH_PG:-1}" != 0 ] && [ -z "$PG_URL" ] && [ -f .ci/postgres.sh ]; then
  PG_URL=$(bash .ci/postgres.sh 2>/dev/null | tail -n 1) || PG_URL=""
fi
if [ "${BENCH_PG:-1}" != 0 ] && [ -n "$PG_URL" ]; then
  leg postgres --database-url "$PG_URL"
else
  log "PostgreSQL: not reachable or skipped (BENCH_PG=0); no PostgreSQL row"
fi

if [ "${BENCH_QUOTA:-0}" = 1 ]; then
  leg "sqlite, channel limit" --per-minute 10000000
  if [ "${BENCH_PG:-1}" != 0 ] && [ -n "$PG_URL" ]; then
    leg "postgres, channel limit" --database-url "$PG_URL" --per-minute 10000000
  fi
fi

if [ "${BENCH_DKIM:-0}" = 1 ]; then
  # The shared pool without a DKIM key for bench.test (nothing to sign), then with one.
  leg "sqlite, shared pool, unsigned" --shared-pool
  leg "sqlite, shared pool, DKIM-signed" --shared-pool --dkim
fi

# --- 6. the table -------------------------------------------------------------------------
echo
echo "switchboard $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src migrations Cargo.toml 2>/dev/null || echo ' (with uncommitted changes)'), N=$N, $(nproc) CPUs"
echo "machine before: $NOTE_BEFORE"
echo "machine after:  $(machine_note)"
{
  printf 'path\tN\tseconds\tmsg/s\taccept msg/s\tcomplete\n'
  printf '%s\n' "${RESULTS[@]}"
} | column -t -s $'\t'
echo "(e2e: first POST /v1/messages/batch to the sink counting the last message; accept: the HTTP batches alone)"
exit $status
