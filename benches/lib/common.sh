# Helpers the benchmark scripts share: sourced, never run. The caller sets `work` (its
# scratch directory), `pg_bin`, `DURATION` and `ROWS` first, and stops what it started
# in its own EXIT trap (`stop_postgres` for PostgreSQL).

as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

free_port() { # host
  python3 -c "import socket; s=socket.socket(); s.bind(('$1',0)); print(s.getsockname()[1]); s.close()"
}

wait_for_log() { # file text
  for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; tail -5 "$1" >&2; exit 1
}

# PostgreSQL: a primary and one synchronous standby (streaming replication,
# synchronous_commit = on) under $work; sets primary_port and standby_port.
start_postgres_with_sync_standby() {
  [ "$(id -u)" -eq 0 ] && chown postgres "$work"
  primary_port=$(free_port 127.0.0.1)
  standby_port=$(free_port 127.0.0.1)
  as_postgres "$pg_bin/initdb" -D "$work/primary" -A trust -U postgres -E UTF8 --locale=C >/dev/null
  cat >> "$work/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
max_connections = 100
wal_level = replica
max_wal_senders = 4
synchronous_standby_names = 'standby1'
synchronous_commit = on
CONF
  as_postgres "$pg_bin/pg_ctl" -D "$work/primary" -l "$work/primary.log" -w \
    -o "-p $primary_port -k $work" start >/dev/null
  as_postgres "$pg_bin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres \
    -D "$work/standby" -X stream -R >/dev/null
  echo "primary_conninfo = 'host=127.0.0.1 port=$primary_port user=postgres application_name=standby1'" \
    | as_postgres tee -a "$work/standby/postgresql.auto.conf" >/dev/null
  as_postgres "$pg_bin/pg_ctl" -D "$work/standby" -l "$work/standby.log" -w \
    -o "-p $standby_port -k $work" start >/dev/null
  local state=""
  for _ in $(seq 1 100); do
    state=$(psql -X -A -t -h 127.0.0.1 -p "$primary_port" -U postgres -d postgres \
      -c "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'")
    [ "$state" = "sync" ] && break
    sleep 0.1
  done
  [ "$state" = "sync" ] || { echo "the standby is not synchronous ($state)" >&2; exit 1; }
}

stop_postgres() { # stops what start_postgres_with_sync_standby started, if it did
  for dir in primary standby; do
    if [ -f "$work/$dir/postmaster.pid" ]; then
      as_postgres "$pg_bin/pg_ctl" -D "$work/$dir" -m immediate -w stop >/dev/null 2>&1 || true
    fi
  done
}

load() { # host port: the pgbench scripts' accounts table with ROWS rows
  local values
  values=$(python3 -c "print(', '.join(f'({i}, 0)' for i in range(1, $ROWS + 1)))")
  psql -X -q -h "$1" -p "$2" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -f benches/pgbench/schema.sql -c "INSERT INTO accounts VALUES $values" >/dev/null
}

run() { # host port script clients [PGOPTIONS] -> "tps p50_ms p99_ms"
  local logs="$work/log.$RANDOM"
  mkdir -p "$logs"
  local out
  out=$(cd "$logs" && PGOPTIONS="${5:-}" pgbench -n -h "$1" -p "$2" -U postgres -M prepared \
    -c "$4" -j "$(( $4 < 2 ? $4 : 2 ))" -T "$DURATION" -D "rows=$ROWS" --max-tries=100 \
    -l -f "$OLDPWD/benches/pgbench/$3.sql" postgres 2>&1) || true
  local tps
  tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
  if [ -z "$tps" ]; then echo "pgbench failed on $1:$2 ($3, $4 clients):" >&2; echo "$out" >&2; exit 1; fi
  local percentiles
  percentiles=$(cat "$logs"/pgbench_log.* | python3 -c '
import sys
latencies = sorted(int(line.split()[2]) for line in sys.stdin if line.strip())
pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1000
print(f"{pick(0.50):.2f} {pick(0.99):.2f}")')
  rm -rf "$logs"
  echo "$tps $percentiles"
}

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
