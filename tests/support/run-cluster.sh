#!/usr/bin/env bash
# Starts node1..node4 on ports 5001..5004 with ids 1..4 (node4 wins), prefixes every output line
# with the node's name, also writes logs/NODE.log, and stops all four on Ctrl-C.
# Extra arguments go to every node, e.g. --startup-delay 2s --health-interval 1s.
set -u
cd "$(dirname "$0")/../.."
mkdir -p logs
pids=()
for i in 1 2 3 4; do
  name="node$i"
  ./bully "500$i" "$name" --id "$i" "$@" \
    > >(tee "logs/$name.log" | sed -u "s/^/$name | /") 2>&1 &
  pids+=($!)
done
stop() {
  trap - INT TERM
  kill -TERM "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" 2>/dev/null
  exit 0
}
trap stop INT TERM
echo "cluster: node1..node4 on ports 5001..5004 (logs in logs/); Ctrl-C stops it"
wait "${pids[@]}"
