#!/usr/bin/env bash
# Replicated writes, measured: a 3-node Tessera cluster against a single Tessera server
# and against PostgreSQL 15 with one synchronous standby (streaming replication,
# synchronous_commit = on), all on this machine, in the same run, with the same pgbench
# scripts (benches/pgbench/). Then read TPS on the cluster at each read consistency,
# and failover time over KILLS leader kills.
#
# Prints Markdown tables ready for docs/performance.md: TPS and p50/p99 latency (from
# pgbench's per-transaction log) for each system, and the ratios.
#
# Usage: benches/cluster-vs-postgres.sh   (DURATION=seconds per run, default 10;
#        ROWS=accounts rows, default 10000; CLIENTS="1 8 32"; KILLS=10, 0 skips failover)
# Everything it starts is stopped by pid when it exits, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# shellcheck source=benches/lib/common.sh
source benches/lib/common.sh

DURATION=${DURATION:-10}
ROWS=${ROWS:-10000}
read -r -a CLIENTS <<< "${CLIENTS:-1 8 32}"
KILLS=${KILLS:-10}

work=$(mktemp -d /tmp/tessera-cluster-vs-pg.XXXXXX)
pids=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

cleanup() {
  for pid_file in "$work"/*.pid; do
    [ -f "$pid_file" ] && kill -KILL "$(cat "$pid_file")" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  stop_postgres
  if [ -n "${keep_logs:-}" ]; then
    mkdir -p "$work.logs" && cp "$work"/node*.log "$work.logs/" && echo "node logs kept in $work.logs" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "building tessera (optimized)..." >&2
cargo build --profile bench --quiet --bin tessera
tessera=target/release/tessera

# PostgreSQL: a primary and a synchronous standby.
start_postgres_with_sync_standby

# Tessera, one server.
single_port=$(free_port 127.0.0.1)
"$tessera" server --data "$work/single" --listen "127.0.0.1:$single_port" 2>"$work/single.log" &
pids+=($!)
wait_for_log "$work/single.log" "tessera server ready"

# Tessera, three nodes on 127.0.0.1-3.
members=""
declare -a sql_address raft_address
for i in 0 1 2; do
  host="127.0.0.$((i + 1))"
  sql_address[i]="$host:$(free_port "$host")"
  raft_address[i]="$host:$(free_port "$host")"
  members="$members${members:+,}$((i + 1))=${raft_address[i]}"
done
start_node() { # index
  local i=$1
  : > "$work/node$i.log"
  "$tessera" server --data "$work/node$i" --listen "${sql_address[i]}" --node-id $((i + 1)) \
    --raft-listen "${raft_address[i]}" --initial-members "$members" 2>>"$work/node$i.log" &
  echo $! > "$work/node$i.pid"
  wait_for_log "$work/node$i.log" "tessera server ready"
}
for i in 0 1 2; do start_node "$i"; done

load 127.0.0.1 "$primary_port"
load 127.0.0.1 "$single_port"
load 127.0.0.1 "${sql_address[0]##*:}"


# The data group's leader (PostgreSQL's clients talk to its primary; the cluster's are
# measured both on the leader and on a follower, which forwards writes one hop). The
# metadata leadership joins the data leader by itself within seconds of the election.
data_leader() {
  psql -X -A -t -h "${sql_address[0]%:*}" -p "${sql_address[0]##*:}" -U postgres -d postgres \
    -c "SHOW CLUSTER" | awk -F'|' -v group="$1" '$4 == group && $5 == "leader" { print $1 - 1 }'
}
for _ in $(seq 1 100); do
  leader=$(data_leader 1)
  [ -n "$leader" ] && [ "$leader" = "$(data_leader 0)" ] && break
  sleep 0.2
done
[ -n "$leader" ] || { echo "the cluster has no data leader" >&2; exit 1; }
follower=$(( (leader + 1) % 3 ))
leader_host=${sql_address[leader]%:*}
leader_port=${sql_address[leader]##*:}
follower_host=${sql_address[follower]%:*}
follower_port=${sql_address[follower]##*:}

echo "### Writes"
echo
echo "| script | clients | 3-node via leader TPS | p50 / p99 ms | 3-node via follower TPS | p50 / p99 ms | single TPS | p50 / p99 ms | PG + sync standby TPS | p50 / p99 ms | leader / PG sync | follower / PG sync | leader / single |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for script in update insert; do
  for clients in "${CLIENTS[@]}"; do
    read -r c_tps c_p50 c_p99 < <(run "$leader_host" "$leader_port" "$script" "$clients")
    read -r f_tps f_p50 f_p99 < <(run "$follower_host" "$follower_port" "$script" "$clients")
    read -r s_tps s_p50 s_p99 < <(run 127.0.0.1 "$single_port" "$script" "$clients")
    read -r p_tps p_p50 p_p99 < <(run 127.0.0.1 "$primary_port" "$script" "$clients")
    printf '| %s | %s | %.0f | %s / %s | %.0f | %s / %s | %.0f | %s / %s | %.0f | %s / %s | %s× | %s× | %s× |\n' \
      "$script" "$clients" "$c_tps" "$c_p50" "$c_p99" "$f_tps" "$f_p50" "$f_p99" \
      "$s_tps" "$s_p50" "$s_p99" "$p_tps" "$p_p50" "$p_p99" \
      "$(ratio "$c_tps" "$p_tps")" "$(ratio "$f_tps" "$p_tps")" "$(ratio "$c_tps" "$s_tps")"
  done
done

echo
echo "### Point reads on the cluster by read consistency (8 clients)"
echo
echo "| read_consistency | via leader TPS | p50 / p99 ms | via follower TPS | p50 / p99 ms | leader / PG primary | follower / PG primary |"
echo "|---|---:|---:|---:|---:|---:|---:|"
read -r p_tps p_p50 p_p99 < <(run 127.0.0.1 "$primary_port" select 8)
for level in linearizable lease stale; do
  read -r r_tps r_p50 r_p99 < <(run "$leader_host" "$leader_port" select 8 "-c read_consistency=$level")
  read -r f_tps f_p50 f_p99 < <(run "$follower_host" "$follower_port" select 8 "-c read_consistency=$level")
  printf '| %s | %.0f | %s / %s | %.0f | %s / %s | %s× | %s× |\n' "$level" "$r_tps" "$r_p50" "$r_p99" \
    "$f_tps" "$f_p50" "$f_p99" "$(ratio "$r_tps" "$p_tps")" "$(ratio "$f_tps" "$p_tps")"
done
printf '| (PostgreSQL primary) | %.0f | %s / %s | | | 1.00× | |\n' "$p_tps" "$p_p50" "$p_p99"
# Figures "via leader" mean nothing if the leadership moved while they were measured.
if [ "$(data_leader 1)" != "$leader" ] || [ "$(data_leader 0)" != "$leader" ]; then
  echo
  echo "**Warning: the leadership moved during the measurements (node $((leader + 1)) led at the start; now group 1: $(( $(data_leader 1) + 1 )), group 0: $(( $(data_leader 0) + 1 ))). The figures above are not comparable; node logs are kept in $work.logs.**"
  keep_logs=1
fi

if [ "$KILLS" -eq 0 ]; then
  exit 0
fi
echo
echo "### Failover: writes resume after a SIGKILL of the data leader ($KILLS kills)"
echo
addresses=$(IFS=,; echo "${sql_address[*]}")
pid_files="$work/node0.pid,$work/node1.pid,$work/node2.pid"
restarts=()
for i in 0 1 2; do
  restarts+=("'$tessera' server --data '$work/node$i' --listen '${sql_address[i]}' --node-id $((i + 1)) \
--raft-listen '${raft_address[i]}' --initial-members '$members' 2>>'$work/node$i.log' & echo \$! > '$work/node$i.pid'")
done
restart_commands=$(printf '%s\n' "${restarts[@]}")
read -r f_p50 f_max < <(target/pyenv/bin/python benches/cluster_failover.py "$KILLS" \
  "$restart_commands" "$addresses" "$pid_files")
echo "| kills | p50 ms | max ms | target |"
echo "|---:|---:|---:|---|"
echo "| $KILLS | $f_p50 | $f_max | p50 ≤ 1000, max ≤ 3000 |"
