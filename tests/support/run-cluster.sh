#!/usr/bin/env bash
# Starts node1..node4 on ports 5001..5004 with ids 1..4 (node4 wins), prefixes every output line
# with the node's name, also writes logs/NODE.log, prints each node's PID, and stops all four on
# Ctrl-C, showing their last lines. Extra arguments go to every node, e.g. --startup-delay 2s
# --health-interval 1s. BULLY (./bully), BASE_PORT (5000) and LOG_DIR (logs) may be set, as the
# tests do.
set -u
cd "$(dirname "$0")/../.."
bully=${BULLY:-./bully}
base=${BASE_PORT:-5000}
logs=${LOG_DIR:-logs}
mkdir -p "$logs"
fifos=$(mktemp -d)
pids=()
readers=()
for i in 1 2 3 4; do
  name="node$i"
  mkfifo "$fifos/$name"
  # Ctrl-C signals the whole foreground process group. The readers ignore it and end when
  # their node closes its output, so the lines a node writes while it shuts down still show.
  (
    trap '' INT TERM
    tee "$logs/$name.log" < "$fifos/$name" | sed -u "s/^/$name | /"
  ) &
  readers+=($!)
  "$bully" "$((base + i))" "$name" --id "$i" "$@" > "$fifos/$name" 2>&1 &
  pids+=($!)
done
stop() {
  # A second Ctrl-C must not cut the shutdown short.
  trap '' INT TERM
  kill -TERM "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" 2>/dev/null
  wait "${readers[@]}" 2>/dev/null
  rm -rf "$fifos"
  exit 0
}
trap stop INT TERM
echo "cluster: node1..node4 on ports $((base + 1))..$((base + 4)) (logs in $logs/); Ctrl-C stops all four"
for i in 1 2 3 4; do
  echo "cluster: node$i is pid ${pids[$((i - 1))]} on port $((base + i))"
done
echo "cluster: stop one node with 'kill PID', e.g. 'kill ${pids[3]}' for node4, and watch the others elect"
wait "${pids[@]}"
wait "${readers[@]}" 2>/dev/null
rm -rf "$fifos"
