#!/usr/bin/env bash
# The Tessera server against PostgreSQL 15, same machine, same run, same client.
#
# Starts a PostgreSQL (initdb in a temporary directory, default durability: fsync and
# synchronous_commit on) and a release-built `tessera server`, loads the same tables into
# both, and runs the pgbench scripts in benches/pgbench/ against each with 1, 8 and 32
# clients in prepared mode. Prints a Markdown table of TPS, average latency and the
# Tessera/PostgreSQL ratio, ready for docs/performance.md.
#
# Usage: benches/server-vs-postgres.sh        (DURATION=seconds per run, default 10;
#                                               ROWS=accounts rows, default 10000)
# Everything it starts is stopped by pid when it exits, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

DURATION=${DURATION:-10}
ROWS=${ROWS:-10000}
CLIENTS=(1 8 32)
SCRIPTS=(select update insert)

work=$(mktemp -d /tmp/tessera-vs-pg.XXXXXX)
tessera_pid=""
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
  if [ -n "$tessera_pid" ]; then kill -TERM "$tessera_pid" 2>/dev/null || true; wait "$tessera_pid" 2>/dev/null || true; fi
  if [ -f "$work/pg/postmaster.pid" ]; then as_postgres "$pg_bin/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# The bench profile is the release profile; building with it shares the optimized
# dependencies (RocksDB above all) with `cargo bench`.
echo "building tessera (optimized)..." >&2
cargo build --profile bench --quiet --bin tessera

# PostgreSQL with its default durability.
[ "$(id -u)" -eq 0 ] && chown postgres "$work"
pg_port=$(free_port)
as_postgres "$pg_bin/initdb" -D "$work/pg" -A trust -U postgres -E UTF8 --locale=C >/dev/null
as_postgres "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c max_connections=100" start >/dev/null

# Tessera.
tessera_port=$(free_port)
target/release/tessera server --data "$work/tessera" --listen "127.0.0.1:$tessera_port" 2>"$work/tessera.log" &
tessera_pid=$!
for _ in $(seq 1 100); do
  (echo > "/dev/tcp/127.0.0.1/$tessera_port") 2>/dev/null && break
  sleep 0.1
done

load() { # port user
  local values
  values=$(python3 -c "print(', '.join(f'({i}, 0)' for i in range(1, $ROWS + 1)))")
  psql -X -q -h 127.0.0.1 -p "$1" -U "$2" -d postgres -v ON_ERROR_STOP=1 \
    -f benches/pgbench/schema.sql -c "INSERT INTO accounts VALUES $values" >/dev/null
}
load "$pg_port" postgres
load "$tessera_port" postgres

run() { # port script clients -> "tps latency_ms"
  local out
  out=$(pgbench -n -h 127.0.0.1 -p "$1" -U postgres -M prepared -c "$3" -j "$(( $3 < 2 ? $3 : 2 ))" \
    -T "$DURATION" -D "rows=$ROWS" --max-tries=100 -f "benches/pgbench/$2.sql" postgres 2>&1)
  local tps latency
  tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
  latency=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
  if [ -z "$tps" ]; then echo "pgbench failed on port $1 ($2, $3 clients):" >&2; echo "$out" >&2; exit 1; fi
  echo "$tps $latency"
}

echo "| script | clients | Tessera TPS | Tessera avg latency (ms) | PostgreSQL TPS | PostgreSQL avg latency (ms) | Tessera / PostgreSQL |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for script in "${SCRIPTS[@]}"; do
  for clients in "${CLIENTS[@]}"; do
    read -r t_tps t_lat < <(run "$tessera_port" "$script" "$clients")
    read -r p_tps p_lat < <(run "$pg_port" "$script" "$clients")
    ratio=$(python3 -c "print(f'{$t_tps / $p_tps:.2f}')")
    printf '| %s | %s | %.0f | %s | %.0f | %s | %s× |\n' "$script" "$clients" "$t_tps" "$t_lat" "$p_tps" "$p_lat" "$ratio"
  done
done
