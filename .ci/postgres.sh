#!/usr/bin/env bash
# Makes sure a PostgreSQL server is running on this machine and has a database for the
# tests; prints its URL on the last line. Installs PostgreSQL with apt when it is absent,
# starts the cluster when it is stopped. Idempotent.
set -euo pipefail

as_postgres() { su -s /bin/sh postgres -c "$*"; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "installing PostgreSQL" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi

version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$version" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  pg_createcluster "$version" main >&2
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
  echo "starting PostgreSQL $version" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2
fi
port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $3 }')

for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 1
done
pg_isready -h 127.0.0.1 -p "$port" >&2

# A password works whether the server trusts loopback or asks for scram.
as_postgres "psql -q -p $port -v ON_ERROR_STOP=1" >&2 <<'SQL'
SELECT 'CREATE ROLE switchboard_ci LOGIN CREATEDB PASSWORD ''switchboard_ci'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'switchboard_ci') \gexec
SELECT 'CREATE DATABASE switchboard_ci OWNER switchboard_ci'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'switchboard_ci') \gexec
SQL

echo "postgres://switchboard_ci:switchboard_ci@127.0.0.1:${port}/switchboard_ci"
