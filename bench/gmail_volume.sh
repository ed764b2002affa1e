#!/usr/bin/env bash
# How long the Gmail bulk-sender count takes (GET /v1/domains runs it twice per listing), on
# SQLite and PostgreSQL, with the real schema (`switchboard migrate`) and N sent messages of
# one tenant in the last day, a third of them to personal Gmail addresses, beside 4×N rows of
# other tenants. Prints the plan and the median of 20 runs of each query.
#   bash bench/gmail_volume.sh          # N = 100000
#   bash bench/gmail_volume.sh 500000
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
bin=${SWITCHBOARD_BIN:-target/debug/switchboard}
[ -x "$bin" ] || cargo build --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One generator for both databases: rows as CSV, times in microseconds.
python3 - "$n" "$work/rows.csv" <<'PY'
import csv, random, sys, time, uuid
n, out = int(sys.argv[1]), sys.argv[2]
now = int(time.time() * 1_000_000)
day = 24 * 3600 * 1_000_000
acme = "11111111-1111-4111-8111-111111111111"
random.seed(7)
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    for i in range(5 * n):
        tenant = acme if i < n else str(uuid.UUID(int=random.getrandbits(128), version=4))
        rep = random.randrange(50)
        sender = f"rep{rep}@{'mail.' if rep % 5 == 0 else ''}acme.example"
        gmail = 1 if random.random() < 1 / 3 else 0
        sent = now - random.randrange(day)
        w.writerow([str(uuid.uuid4()), tenant, sender, gmail, sent])
PY

since=$(( ($(date +%s) - 86400) * 1000000 ))
quarter=$(( ($(date +%s) - 21600) * 1000000 ))
query="SELECT from_email, CAST(COALESCE(SUM(personal_gmail), 0) AS BIGINT) FROM messages
       WHERE tenant_id = '11111111-1111-4111-8111-111111111111' AND personal_gmail > 0
         AND sent_at >= SINCE GROUP BY from_email"

echo "== SQLite, $n messages of the tenant (+$((4 * n)) of others)"
SWITCHBOARD_DATA_DIR="$work/sqlite" SWITCHBOARD_MASTER_KEYS="k1:$(head -c 32 /dev/urandom | base64)" \
  "$bin" migrate >/dev/null
python3 - "$work/sqlite/switchboard.db" "$work/rows.csv" "$query" "$since" "$quarter" <<'PY'
import csv, sqlite3, statistics, sys, time
db, rows, query, since, quarter = sys.argv[1:]
c = sqlite3.connect(db)
c.execute("PRAGMA foreign_keys = OFF")
with open(rows) as f:
    c.executemany(
        "INSERT INTO messages (id, tenant_id, sender_user_id, message_id_header, from_address, from_email,"
        " recipient_count, subject, envelope, size_bytes, status, attempts, next_attempt_at, created_at,"
        " updated_at, sent_at, personal_gmail) VALUES (?, ?, 'u', 'm', ?, ?, 1, 's', '{}', 2048, 'sent', 1, 0, 0, 0, ?, ?)",
        ((i, t, s, s, int(at), int(g)) for i, t, s, g, at in csv.reader(f)))
c.commit()
c.execute("ANALYZE")
for label, at in (("24 h", since), ("6 h", quarter)):
    q = query.replace("SINCE", at)
    print("plan:", " / ".join(r[-1] for r in c.execute("EXPLAIN QUERY PLAN " + q)))
    times = []
    for _ in range(20):
        t = time.perf_counter(); rows = c.execute(q).fetchall(); times.append(time.perf_counter() - t)
    print(f"{label}: {sum(r[1] for r in rows)} Gmail recipients over {len(rows)} senders, median {statistics.median(times) * 1000:.1f} ms")
PY

url=$(bash .ci/postgres.sh | tail -n 1)
schema="gmail_bench_$$"
echo "== PostgreSQL, the same rows"
psql -q "$url" -c "CREATE SCHEMA $schema"
trap 'psql -q "$url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1; rm -rf "$work"' EXIT
pgurl="$url?options=-csearch_path%3D$schema"
[[ "$url" == *\?* ]] && pgurl="$url&options=-csearch_path%3D$schema"
SWITCHBOARD_DATABASE_URL="$pgurl" SWITCHBOARD_MASTER_KEYS="k1:$(head -c 32 /dev/urandom | base64)" \
  "$bin" migrate >/dev/null
psql -q "$pgurl" <<SQL
-- A throwaway schema: its foreign keys go, so rows need no tenants or users behind them.
DO \$\$ DECLARE c record; BEGIN
  FOR c IN SELECT conname FROM pg_constraint WHERE conrelid = 'messages'::regclass AND contype = 'f' LOOP
    EXECUTE format('ALTER TABLE messages DROP CONSTRAINT %I', c.conname);
  END LOOP;
END \$\$;
CREATE TEMP TABLE raw (id text, tenant_id text, from_email text, personal_gmail bigint, sent_at bigint);
\copy raw FROM '$work/rows.csv' WITH (FORMAT csv)
INSERT INTO messages (id, tenant_id, sender_user_id, message_id_header, from_address, from_email,
  recipient_count, subject, envelope, size_bytes, status, attempts, next_attempt_at, created_at,
  updated_at, sent_at, personal_gmail)
SELECT id, tenant_id, 'u', 'm', from_email, from_email, 1, 's', '{}', 2048, 'sent', 1, 0, 0, 0, sent_at, personal_gmail FROM raw;
VACUUM ANALYZE messages;
SQL
for label in "24 h:$since" "6 h:$quarter"; do
  q=${query//SINCE/${label#*:}}
  psql -q "$pgurl" -c "EXPLAIN (ANALYZE, COSTS OFF) $q" | grep -E "Index|Scan|Execution" | sed 's/^ */plan: /'
  for _ in $(seq 20); do
    psql -qAt "$pgurl" -c "EXPLAIN (ANALYZE, FORMAT JSON) $q" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Execution Time"])'
  done | sort -n | awk -v l="${label%%:*}" '{a[NR]=$1} END {printf "%s: median %.1f ms\n", l, a[int((NR+1)/2)]}'
done
