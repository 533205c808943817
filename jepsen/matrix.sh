#!/usr/bin/env bash
# Runs the Jepsen-style matrix — every workload under every fault at each read level,
# SEEDS seeds of TIME seconds each — and prints a markdown table of the results (for
# docs/consistency.md). Needs root and iptables. Usage:
#   jepsen/matrix.sh [quick]     # quick: 1 seed, 20 s, the main faults only
# Environment: SEEDS (3), TIME (60), LEVELS ("linearizable lease"), STORE (jepsen/store).
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS=${SEEDS:-3}
TIME=${TIME:-60}
LEVELS=${LEVELS:-"linearizable lease"}
STORE=${STORE:-jepsen/store}
WORKLOADS="register bank set append"
NEMESES="partition-leader partition-one partition-halves kill kill-leader pause-leader kill,partition-halves,pause-leader clock-skew-leader"
if [ "${1:-}" = quick ]; then
  SEEDS=1
  TIME=20
  NEMESES="partition-leader kill-leader pause-leader clock-skew-leader"
fi

cargo build --release --workspace --bins >&2
bin=target/release/tessera-jepsen

echo "| workload | faults | read level | runs | operations | info | anomalies | verdict |"
echo "|---|---|---|---:|---:|---:|---|---|"
for workload in $WORKLOADS; do
  for nemesis in $NEMESES; do
    for level in $LEVELS; do
      runs=()
      for seed in $(seq 1 "$SEEDS"); do
        out=$("$bin" test --workload "$workload" --nemesis "$nemesis" --time "$TIME" --seed "$seed" \
          --read-consistency "$level" --store "$STORE" 2>&1 || true)
        dir=$(echo "$out" | sed -n 's/^run directory: //p')
        if [ -z "$dir" ]; then
          echo "run failed ($workload, $nemesis, $level, seed $seed): $out" >&2
          runs+=("")
        else
          runs+=("$dir")
        fi
      done
      python3 - "$workload" "$nemesis" "$level" "${runs[@]}" <<'EOF'
import json, sys
workload, nemesis, level, *dirs = sys.argv[1:]
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
print(f"| {workload} | {nemesis} | {level} | {len(dirs)} | {ops} | {info} | {', '.join(sorted(set(anomalies))) or 'none'} | {summary} |")
EOF
    done
  done
done
