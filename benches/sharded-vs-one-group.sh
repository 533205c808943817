#!/usr/bin/env bash
# Sharding, measured (issue 17): a 3-node Tessera cluster running one data group (as
# before sharding) against the same cluster running three data groups (shards spread
# over them, leaders spread over the nodes), a 5-node cluster of 5 groups on 3 nodes
# each, and PostgreSQL 15 with one synchronous standby, all on this machine in the same
# run, with the same pgbench scripts (benches/pgbench/), through node 1 and with the
# clients spread over every node. Then a transfer (two accounts on different shards in one
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

# A cluster of `$3` nodes (default 3) on 127.0.0.1-N with `$2` data groups; prints node
# 1's SQL port and writes every node's "host port" to $work/$1.ports. Cluster `$1` uses
# its own ports and directories. Run in a command substitution, so the servers'
# stdout must not be the substitution's.
start_cluster() { # name groups [nodes]
  local name=$1 groups=$2 nodes=${3:-3} members="" i host
  local -a sql raft
  : > "$work/$name.ports"
  for ((i = 0; i < nodes; i++)); do
    host="127.0.0.$((i + 1))"
    sql[i]="$host:$(free_port "$host")"
    raft[i]="$host:$(free_port "$host")"
    members="$members${members:+,}$((i + 1))=${raft[i]}"
    echo "$host ${sql[i]##*:}" >> "$work/$name.ports"
  done
  for ((i = 0; i < nodes; i++)); do
    "$tessera" server --data "$work/$name$i" --listen "${sql[i]}" --node-id $((i + 1)) \
      --raft-listen "${raft[i]}" --initial-members "$members" --data-groups "$groups" \
      >/dev/null 2>"$work/$name$i.log" &
    echo $! > "$work/$name$i.pid"
  done
  for ((i = 0; i < nodes; i++)); do wait_for_log "$work/$name$i.log" "tessera server ready"; done
  echo "${sql[0]##*:}"
}

# Stops cluster `$1`'s nodes (by pid).
stop_cluster() { # name
  local pid_file
  for pid_file in "$work/$1"[0-9]*.pid; do
    kill -KILL "$(cat "$pid_file")" 2>/dev/null || true
    rm -f "$pid_file"
  done
}

# pgbench with `$2` clients spread over every node of cluster `$3` (one pgbench per
# node, side by side): "tps p50_ms p99_ms" over all of them.
run_spread() { # script clients cluster
  local script=$1 clients=$2 nodes host port share i=0 logs="$work/spread.$RANDOM"
  nodes=$(wc -l < "$work/$3.ports")
  mkdir -p "$logs"
  while read -r host port; do
    share=$(( clients / nodes + (i < clients % nodes ? 1 : 0) ))
    if [ "$share" -gt 0 ]; then
      mkdir -p "$logs/$i"
      (cd "$logs/$i" && pgbench -n -h "$host" -p "$port" -U postgres -M prepared -c "$share" \
        -j 1 -T "$DURATION" -D "rows=$ROWS" --max-tries=100 -l \
        -f "$OLDPWD/benches/pgbench/$script.sql" postgres > out 2>&1) &
    fi
    i=$((i + 1))
  done < "$work/$3.ports"
  wait
  local tps
  tps=$(cat "$logs"/*/out | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | python3 -c 'import sys; print(sum(float(l) for l in sys.stdin))')
  cat "$logs"/*/pgbench_log.* | python3 -c '
import sys
tps = sys.argv[1]
latencies = sorted(int(line.split()[2]) for line in sys.stdin if line.strip())
pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1000
print(f"{tps} {pick(0.50):.2f} {pick(0.99):.2f}")' "$tps"
  rm -rf "$logs"
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

echo
echo "### Clients spread over the nodes (8 clients: 3, 3, 2), and a 5-node cluster"
echo
echo "Each node takes its share of the clients, as behind a load balancer. The 5-node"
echo "cluster runs 5 data groups of 3 voters each (every node hosts 3, leads 1); it runs"
echo "after the two 3-node clusters are stopped, through all five nodes."
echo
echo "| script | 1 group, spread TPS | p50 / p99 ms | 3 groups, spread TPS | p50 / p99 ms | 5 nodes, 5 groups, spread TPS | p50 / p99 ms | PG + sync standby TPS | 3 groups / 1 group | 5 nodes / PG | 3 groups / PG |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
declare -A spread_a spread_b
for script in update insert select; do
  spread_a[$script]=$(run_spread "$script" 8 a)
  spread_b[$script]=$(run_spread "$script" 8 b)
done
stop_cluster a
stop_cluster b
start_cluster c 5 5 > /dev/null
read -r five_host five_port < "$work/c.ports"
load "$five_host" "$five_port"
sleep 6
for script in update insert select; do
  read -r a_tps a_p50 a_p99 <<< "${spread_a[$script]}"
  read -r b_tps b_p50 b_p99 <<< "${spread_b[$script]}"
  read -r c_tps c_p50 c_p99 < <(run_spread "$script" 8 c)
  read -r p_tps _ _ < <(run 127.0.0.1 "$primary_port" "$script" 8)
  printf '| %s | %.0f | %s / %s | %.0f | %s / %s | %.0f | %s / %s | %.0f | %s× | %s× | %s× |\n' \
    "$script" "$a_tps" "$a_p50" "$a_p99" "$b_tps" "$b_p50" "$b_p99" "$c_tps" "$c_p50" "$c_p99" \
    "$p_tps" "$(ratio "$b_tps" "$a_tps")" "$(ratio "$c_tps" "$p_tps")" "$(ratio "$b_tps" "$p_tps")"
done
stop_cluster c

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
echo "Freshly loaded (rows in the memtable), then after a restart (RocksDB flushes what it"
echo "recovers from the WAL, so the rows are in SST files, as a table at rest is)."
echo
echo "| table | rows in | counts/s | p50 / p99 ms | 8 shards / 1 shard (time) |"
echo "|---|---|---:|---:|---:|"
count_both() { # where
  local one_tps one_p50 one_p99 eight_tps eight_p50 eight_p99
  read -r one_tps one_p50 one_p99 < <(run 127.0.0.1 "$single_port" count_1 2)
  read -r eight_tps eight_p50 eight_p99 < <(run 127.0.0.1 "$single_port" count_8 2)
  printf '| 1 shard | %s | %.1f | %s / %s | |\n' "$1" "$one_tps" "$one_p50" "$one_p99"
  printf '| 8 shards | %s | %.1f | %s / %s | %s× |\n' "$1" "$eight_tps" "$eight_p50" \
    "$eight_p99" "$(ratio "$eight_p50" "$one_p50")"
}
count_both memtable
# A clean stop, then the same data directory again.
kill -TERM "$(cat "$work/single.pid")"
for _ in $(seq 1 100); do kill -0 "$(cat "$work/single.pid")" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$(cat "$work/single.pid")" 2>/dev/null || true
mv "$work/single.log" "$work/single.first.log"
"$tessera" server --data "$work/single" --listen "127.0.0.1:$single_port" 2>"$work/single.log" &
echo $! > "$work/single.pid"
wait_for_log "$work/single.log" "tessera server ready"
count_both "SST files"
