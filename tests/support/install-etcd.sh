#!/usr/bin/env bash
# Installs etcd for the tests from Debian (etcd-server and etcd-client, 3.4.23 on bookworm)
# unless an `etcd` is already on PATH: with apt-get install as root, else unpacked into
# tools/etcd (git-ignored) from the packages apt downloads.
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
dest="$root/tools/etcd"
if [ -x "$dest/usr/bin/etcd" ]; then echo "etcd: using tools/etcd/usr/bin/etcd"; exit 0; fi
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" = 0 ]; then
  install() { apt-get install -y -q --no-install-recommends etcd-server etcd-client; }
  install || { apt-get update -q && install; }
  # The package enables a system-wide etcd on 2379; the tests start their own on free ports.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
  echo "etcd: installed $(etcd --version | head -1)"
  exit 0
fi
# Without root: the packages unpacked into tools/ (git-ignored), as install-consul.sh does.
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get -q download etcd-server etcd-client)
mkdir -p "$dest"
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$dest"; done
echo "etcd: installed $("$dest/usr/bin/etcd" --version | head -1) into tools/etcd"
