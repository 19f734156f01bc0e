#!/usr/bin/env bash
# Installs Consul for the tests into tools/consul (git-ignored) unless a `consul` is already on PATH.
# Consul is not packaged for Debian bookworm; bullseye's `consul` 1.8.7 (MPL-2.0) runs here.
# The mirror URI is read from the system's own apt configuration, never hard-coded.
#
#   install-consul.sh           install, showing apt's output
#   install-consul.sh --quiet   one line on success; apt's output goes to target/install-consul.log
#                               and is shown only when the install fails (what `make test` runs)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dest="$root/tools/consul"
if [ "${1:-}" = --quiet ]; then
  mkdir -p "$root/target"
  log="$root/target/install-consul.log"
  if bash "$0" >"$log" 2>&1; then
    tail -n 1 "$log"
    exit 0
  fi
  cat "$log" >&2
  echo "install-consul: failed (log above, also in target/install-consul.log)" >&2
  exit 1
fi
if command -v consul >/dev/null 2>&1; then echo "consul: using $(command -v consul)"; exit 0; fi
if [ -x "$dest/usr/bin/consul" ]; then echo "consul: using tools/consul/usr/bin/consul"; exit 0; fi
src=/etc/apt/sources.list.d/debian.sources
uri=$(awk '/^URIs:/ {print $2; exit}' "$src" 2>/dev/null || true)
if [ -z "$uri" ]; then uri=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true); fi
[ -n "$uri" ] || { echo "install-consul: no Debian mirror found in apt's configuration" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/sources.list.d" "$work/lists/partial"
cat >"$work/sources.list.d/bullseye.sources" <<SRC
Types: deb
URIs: $uri
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
opts=(-o "Dir::Etc::sourcelist=/dev/null" -o "Dir::Etc::sourceparts=$work/sources.list.d" -o "Dir::State::Lists=$work/lists")
apt-get "${opts[@]}" update -qq
(cd "$work" && apt-get "${opts[@]}" -q download consul)
mkdir -p "$dest"
dpkg-deb -x "$work"/consul_*.deb "$dest"
echo "consul: installed $("$dest/usr/bin/consul" version | head -1) into tools/consul"
