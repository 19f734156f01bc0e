#!/usr/bin/env bash
# Installs etcd for the tests from Debian (etcd-server and etcd-client, 3.4.23 on bookworm)
# unless an `etcd` is already on PATH. Needs root when it has to install.
#
#   install-etcd.sh           install, showing apt's output
#   install-etcd.sh --quiet   one line on success; apt's output goes to target/install-etcd.log
#                             and is shown only when the install fails (what `make test` runs)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ "${1:-}" = --quiet ]; then
  mkdir -p "$root/target"
  log="$root/target/install-etcd.log"
  if bash "$0" >"$log" 2>&1; then
    tail -n 1 "$log"
    exit 0
  fi
  cat "$log" >&2
  echo "install-etcd: failed (log above, also in target/install-etcd.log)" >&2
  exit 1
fi
if command -v etcd >/dev/null 2>&1; then echo "etcd: using $(command -v etcd)"; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "install-etcd: etcd is missing and installing it needs root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -q --no-install-recommends etcd-server etcd-client; }
install || { apt-get update -q && install; }
# The package enables a system-wide etcd on 2379; the tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now etcd >/dev/null 2>&1 || true
fi
echo "etcd: installed $(etcd --version | head -1)"
