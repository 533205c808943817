#!/usr/bin/env bash
# Runs the Jepsen-style matrix — every workload under every fault, at the read levels
# where the fault matters, SEEDS seeds of TIME seconds each — and prints a markdown
# table of the results (for docs/consistency.md). Needs root and iptables. Usage:
#   jepsen/matrix.sh [quick|groups]  # quick: 1 seed, 20 s, the leader faults only;
#                                    # groups: only the rows over several data groups
# Environment: SEEDS (1), TIME (60), STORE (jepsen/store), JEPSEN_BIN (a built
# tessera-jepsen to use instead of building the optimized one; the tessera binary
# next to it is used).
#
# Each entry is NODES:FAULTS:LEVELS[:GROUPS] (GROUPS: data groups, default 1; with 4,
# tables' shards spread over them and most transactions commit across groups, while
# the leader faults pick a random group's leader each time; 5 nodes with 5 groups puts
# each group on 3 of them, so data partitions and most calls cross nodes). Lease reads differ from linearizable ones only in
# trusting the leader's lease, so `lease` runs with the faults that test a lease: a cut
# off, paused or clock-skewed leader, and the 5-node partitions where two leaders may
# overlap. The full matrix is 132 runs (about 145 minutes at 60 s on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS=${SEEDS:-1}
TIME=${TIME:-60}
STORE=${STORE:-jepsen/store}
WORKLOADS="register bank set append"
both="linearizable,lease"
CONFIGS="3:partition-one:linearizable 3:partition-halves:linearizable 3:kill:linearizable
3:kill-leader:linearizable 3:kill-majority:linearizable 3:pause:linearizable 3:member:linearizable
3:kill,partition-halves,pause-leader,member:linearizable
3:partition-leader:$both 3:pause-leader:$both 3:clock-skew-leader:$both
5:partition-majorities-ring:$both 5:partition-bridge:$both
3:kill-leader:linearizable:4 3:partition-leader:$both:4 3:pause-leader:$both:4
3:kill,partition-halves,pause-leader,member:linearizable:4 5:partition-majorities-ring:$both:4
3:kill-coordinator:linearizable:4 5:kill-coordinator:linearizable:5
5:kill-leader:linearizable:5 5:partition-leader:$both:5 5:kill,partition-halves:linearizable:5
5:member,kill-leader:linearizable:5"
if [ "${1:-}" = quick ]; then
  SEEDS=1
  TIME=20
  CONFIGS="3:partition-leader:$both 3:kill-leader:$both 3:pause-leader:$both 3:clock-skew-leader:$both
3:kill-leader,partition-leader:linearizable:4"
elif [ "${1:-}" = groups ]; then
  CONFIGS=$(echo "$CONFIGS" | tr ' ' '\n' | grep -E ':[0-9]+$' | tr '\n' ' ')
fi

# The optimized build the benchmarks use (one profile, shared), unless one is given.
if [ -n "${JEPSEN_BIN:-}" ]; then
  bin=$JEPSEN_BIN
else
  cargo build --profile bench --workspace --bins >&2
  bin=target/release/tessera-jepsen
fi

echo "| workload | nodes | groups | faults | read level | runs | operations | info | anomalies | verdict |"
echo "|---|---:|---:|---|---|---:|---:|---:|---|---|"
for workload in $WORKLOADS; do
  for config in $CONFIGS; do
    IFS=: read -r nodes nemesis levels groups <<< "$config"
    groups=${groups:-1}
    for level in ${levels//,/ }; do
      runs=()
      for seed in $(seq 1 "$SEEDS"); do
        out=$("$bin" test --workload "$workload" --nodes "$nodes" --data-groups "$groups" --nemesis "$nemesis" --time "$TIME" \
          --seed "$seed" --read-consistency "$level" --store "$STORE" 2>&1 || true)
        dir=$(echo "$out" | sed -n 's/^run directory: //p')
        if [ -z "$dir" ]; then
          echo "run failed ($workload, $nodes nodes, $nemesis, $level, seed $seed): $out" >&2
          runs+=("")
        else
          runs+=("$dir")
          # A valid run's node data (hundreds of MB) is not worth keeping; its
          # history, logs and verdict are.
          if grep -q '"valid": "valid"' "$dir/verdict.json"; then
            rm -rf "$dir"/n*/
          fi
        fi
      done
      python3 - "$workload" "$nodes" "$groups" "$nemesis" "$level" "${runs[@]}" <<'EOF'
import json, sys
workload, nodes, groups, nemesis, level, *dirs = sys.argv[1:]
ops = info = 0
anomalies, verdicts = [], []
for d in dirs:
    if not d:
        verdicts.append("did not run")
        continue
    v = json.load(open(f"{d}/verdict.json"))
    for name, count in v["stats"].items():
        parts = name.rsplit("-", 1)
        if len(parts) == 2 and parts[1] in ("ok", "fail", "info"):
            ops += count
            if parts[1] == "info":
                info += count
    anomalies += sorted({a["kind"] for a in v["anomalies"]})
    verdicts.append(v["valid"])
summary = "valid" if all(x == "valid" for x in verdicts) else ", ".join(verdicts)
print(f"| {workload} | {nodes} | {groups} | {nemesis} | {level} | {len(dirs)} | {ops} | {info} | {', '.join(sorted(set(anomalies))) or 'none'} | {summary} |")
EOF
    done
  done
done
