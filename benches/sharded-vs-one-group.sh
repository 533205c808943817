#!/usr/bin/env bash
# Sharding, measured (issue 17): a 3-node Tessera cluster running one data group (as
# before sharding) against the same cluster running three data groups (shards spread
# over them, leaders spread over the nodes), and PostgreSQL 15 with one synchronous
# standby, all on this machine in the same run, with the same pgbench scripts
# (benches/pgbench/). Then a transfer (two accounts on different shards in one
# transaction: across groups on the pooled cluster) against a one-row update on the
# same cluster, point reads by key on both clusters and the PostgreSQL primary, and a
# full-table COUNT(*) of 200,000 rows in 8 shards against the same
# rows in one shard, on a single server.
#
# Prints Markdown tables ready for docs/performance.md.
#
# Usage: benches/sharded-vs-one-group.sh   (DURATION=seconds per run, default 10;
#        ROWS=accounts rows, default 10000; CLIENTS="8"; COUNT_ROWS=200000)
# Everything it starts is stopped by pid when it exits, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# shellcheck source=benches/lib/common.sh
source benches/lib/common.sh

DURATION=${DURATION:-10}
ROWS=${ROWS:-10000}
read -r -a CLIENTS <<< "${CLIENTS:-8}"
COUNT_ROWS=${COUNT_ROWS:-200000}

work=$(mktemp -d /tmp/tessera-sharded.XXXXXX)
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

cleanup() {
  for pid_file in "$work"/*.pid; do
    [ -f "$pid_file" ] && kill -KILL "$(cat "$pid_file")" 2>/dev/null || true
  done
  stop_postgres
  rm -rf "$work"
}
trap cleanup EXIT

echo "building tessera (optimized)..." >&2
cargo build --profile bench --quiet --bin tessera
tessera=target/release/tessera

# PostgreSQL: a primary and a synchronous standby.
start_postgres_with_sync_standby

# A 3-node cluster on 127.0.0.1-3 with `$2` data groups; prints node 1's SQL port.
# Cluster `$1` (a or b) uses its own ports and directories. Run in a command
# substitution, so the servers' stdout must not be the substitution's.
start_cluster() { # name groups
  local name=$1 groups=$2 members="" i host
  local -a sql raft
  for i in 0 1 2; do
    host="127.0.0.$((i + 1))"
    sql[i]="$host:$(free_port "$host")"
    raft[i]="$host:$(free_port "$host")"
    members="$members${members:+,}$((i + 1))=${raft[i]}"
  done
  for i in 0 1 2; do
    "$tessera" server --data "$work/$name$i" --listen "${sql[i]}" --node-id $((i + 1)) \
      --raft-listen "${raft[i]}" --initial-members "$members" --data-groups "$groups" \
      >/dev/null 2>"$work/$name$i.log" &
    echo $! > "$work/$name$i.pid"
  done
  for i in 0 1 2; do wait_for_log "$work/$name$i.log" "tessera server ready"; done
  echo "${sql[0]##*:}"
}


one_group_port=$(start_cluster a 1)
three_groups_port=$(start_cluster b 3)
load 127.0.0.1 "$primary_port"
load 127.0.0.1 "$one_group_port"
load 127.0.0.1 "$three_groups_port"
# Leaders settle (and spread, on the pooled cluster) within seconds of the elections.
sleep 6


echo "### Writes: one data group, three data groups, PostgreSQL with a synchronous standby"
echo
echo "Through node 1 of each cluster (with three groups it leads about one of them; the"
echo "other writes go one hop to their group's leader)."
echo
echo "| script | clients | 1 group TPS | p50 / p99 ms | 3 groups TPS | p50 / p99 ms | PG + sync standby TPS | p50 / p99 ms | 1 group / PG | 3 groups / PG | 3 groups / 1 group |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for script in update insert; do
  for clients in "${CLIENTS[@]}"; do
    read -r a_tps a_p50 a_p99 < <(run 127.0.0.1 "$one_group_port" "$script" "$clients")
    read -r b_tps b_p50 b_p99 < <(run 127.0.0.1 "$three_groups_port" "$script" "$clients")
    read -r p_tps p_p50 p_p99 < <(run 127.0.0.1 "$primary_port" "$script" "$clients")
    printf '| %s | %s | %.0f | %s / %s | %.0f | %s / %s | %.0f | %s / %s | %s× | %s× | %s× |\n' \
      "$script" "$clients" "$a_tps" "$a_p50" "$a_p99" "$b_tps" "$b_p50" "$b_p99" \
      "$p_tps" "$p_p50" "$p_p99" \
      "$(ratio "$a_tps" "$p_tps")" "$(ratio "$b_tps" "$p_tps")" "$(ratio "$b_tps" "$a_tps")"
  done
done

echo
echo "### Point reads by key: one data group, three data groups, the PostgreSQL primary"
echo
echo "Linearizable, through node 1; PostgreSQL's primary answers alone."
echo
echo "| script | clients | 1 group TPS | p50 / p99 ms | 3 groups TPS | p50 / p99 ms | PG primary TPS | p50 / p99 ms | 3 groups / 1 group | 3 groups / PG |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for clients in "${CLIENTS[@]}"; do
  read -r a_tps a_p50 a_p99 < <(run 127.0.0.1 "$one_group_port" select "$clients")
  read -r b_tps b_p50 b_p99 < <(run 127.0.0.1 "$three_groups_port" select "$clients")
  read -r p_tps p_p50 p_p99 < <(run 127.0.0.1 "$primary_port" select "$clients")
  printf '| select | %s | %.0f | %s / %s | %.0f | %s / %s | %.0f | %s / %s | %s× | %s× |\n' \
    "$clients" "$a_tps" "$a_p50" "$a_p99" "$b_tps" "$b_p50" "$b_p99" "$p_tps" "$p_p50" "$p_p99" \
    "$(ratio "$b_tps" "$a_tps")" "$(ratio "$b_tps" "$p_tps")"
done

echo
echo "### A transfer across shards against a one-row update (8 clients, three groups)"
echo
echo "| script | TPS | p50 / p99 ms | p50 / update p50 |"
echo "|---|---:|---:|---:|"
read -r u_tps u_p50 u_p99 < <(run 127.0.0.1 "$three_groups_port" update 8)
read -r t_tps t_p50 t_p99 < <(run 127.0.0.1 "$three_groups_port" transfer 8)
printf '| update | %.0f | %s / %s | 1.00× |\n' "$u_tps" "$u_p50" "$u_p99"
printf '| transfer | %.0f | %s / %s | %s× |\n' "$t_tps" "$t_p50" "$t_p99" "$(ratio "$t_p50" "$u_p50")"

# A single server: the same rows in a table of 8 shards and in one of 1 shard.
single_port=$(free_port 127.0.0.1)
"$tessera" server --data "$work/single" --listen "127.0.0.1:$single_port" 2>"$work/single.log" &
echo $! > "$work/single.pid"
wait_for_log "$work/single.log" "tessera server ready"
for shards in 8 1; do
  psql -X -q -h 127.0.0.1 -p "$single_port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "CREATE TABLE counted_$shards (id INT PRIMARY KEY, v INT) WITH (shards = $shards)" \
    -c "INSERT INTO counted_$shards SELECT g, g FROM generate_series(1, $COUNT_ROWS) AS g" >/dev/null
done
echo
echo "### COUNT(*) of $COUNT_ROWS rows: 8 shards against 1 (single server, 2 clients)"
echo
echo "| table | counts/s | p50 / p99 ms | 8 shards / 1 shard (time) |"
echo "|---|---:|---:|---:|"
read -r one_tps one_p50 one_p99 < <(run 127.0.0.1 "$single_port" count_1 2)
read -r eight_tps eight_p50 eight_p99 < <(run 127.0.0.1 "$single_port" count_8 2)
printf '| 1 shard | %.1f | %s / %s | |\n' "$one_tps" "$one_p50" "$one_p99"
printf '| 8 shards | %.1f | %s / %s | %s× |\n' "$eight_tps" "$eight_p50" "$eight_p99" \
  "$(ratio "$eight_p50" "$one_p50")"
