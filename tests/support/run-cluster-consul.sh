#!/usr/bin/env bash
# The demo cluster on Consul: uses the agent at $CONSUL_HTTP_ADDR (default 127.0.0.1:8500) if
# one answers there, else starts `consul agent -dev` on that port, then runs run-cluster.sh with
# --registry consul. Ctrl-C stops the nodes (they deregister), then the agent if it started one.
# Extra arguments go to every node.
set -u
cd "$(dirname "$0")/../.."
mkdir -p logs
addr=${CONSUL_HTTP_ADDR:-127.0.0.1:8500}
addr=${addr#http://}; addr=${addr%/}
host=${addr%:*}; port=${addr##*:}
[ "$host" != "$addr" ] || port=80

# Answers on /v1/status/leader with a leader's address; no curl needed.
has_leader() {
  { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || return 1
  printf 'GET /v1/status/leader HTTP/1.0\r\nHost: %s\r\n\r\n' "$host" >&3
  local answer; answer=$(cat <&3); exec 3<&-
  [[ $answer == *$'\r\n\r\n"'[!\"]* ]]
}

agent=
if ! has_leader; then
  consul=$(command -v consul || echo tools/consul/usr/bin/consul)
  if [ ! -x "$consul" ]; then
    echo "no Consul agent at $addr and no consul binary: install Consul (see src/registry/README.md)" \
      "or run 'bash tests/support/install-consul.sh'" >&2
    exit 1
  fi
  # Its own session, so Ctrl-C reaches the nodes first and the agent outlives their goodbyes.
  setsid "$consul" agent -dev -http-port "$port" > logs/consul.log 2>&1 &
  agent=$!
  echo "consul: started a dev agent on port $port (log in logs/consul.log)"
  for _ in $(seq 1 100); do has_leader && break; sleep 0.2; done
  has_leader || { echo "consul: the dev agent did not come up; see logs/consul.log" >&2; kill "$agent"; exit 1; }
fi
# A handler (not an ignore) so this script outlives Ctrl-C while the nodes keep default handling.
trap true INT TERM
bash tests/support/run-cluster.sh --registry consul --consul "http://$addr" "$@"
if [ -n "$agent" ]; then
  kill -TERM "$agent" 2>/dev/null
  wait "$agent" 2>/dev/null
  echo "consul: dev agent stopped"
fi
