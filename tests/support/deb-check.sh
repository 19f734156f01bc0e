#!/usr/bin/env bash
# Checks the package `make deb` built (src/dist/README.md "Installing the Debian package"):
#
#   deb-check.sh [TARGET]    TARGET: a Rust target triple; default: this host's package
#
# Its contents and conffile, the man page, that /etc/default/bully and bully(8) name every
# flag of `bully --help`, the unit's `systemd-analyze security` (at most 4.9, "OK", also with
# the virtual-IP drop-in of src/dist/README.md); then, for this host's architecture, `dpkg -i`,
# /usr/bin/bully --version, `systemd-analyze verify`, and the installed unit run by a systemd
# of its own in new namespaces (settings, sandbox, restarts, the virtual-IP hook). A package
# of another architecture is checked without installing it (its binary runs under qemu-user
# when present). Needs root; without it (or namespaces) the live part skips, but not under
# CI=true. Installs systemd, iputils-arping and iproute2 when missing. A package that was not
# installed before is purged at the end.
# (Pipelines end in `grep >/dev/null`, not `grep -q`: under pipefail an early exit of grep
# would fail the pipeline with the writer's SIGPIPE.)
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() { echo "deb-check: FAIL: $*" >&2; exit 1; }
ok() { echo "deb-check: ok: $*"; }

target=${1:-}
version=$(awk -F'"' '/^\[package\]/ {p=1} p && /^version *=/ {print $2; exit}' Cargo.toml)
case "$target" in
  "") arch=$(dpkg --print-architecture) ;;
  x86_64-unknown-linux-gnu) arch=amd64 ;;
  aarch64-unknown-linux-gnu|aarch64-unknown-linux-musl) arch=arm64 ;;
  armv7-unknown-linux-gnueabihf|armv7-unknown-linux-musleabihf) arch=armhf ;;
  *) fail "no Debian architecture known for $target" ;;
esac
deb=target/debian/bully_${version}_${arch}.deb
[ -f "$deb" ] || fail "$deb not found: run make deb${target:+ TARGET=$target}"
echo "deb-check: $deb, $(stat -c %s "$deb") bytes"
native=no
[ "$arch" = "$(dpkg --print-architecture)" ] && native=yes

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
# Quietly installs Debian packages that provide the given commands, when one is missing.
need() {
  local pkg=$1; shift
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null && continue
    echo "deb-check: installing $pkg (for $c)"
    local log=target/deb-check-apt.log
    if ! { "${sudo[@]}" apt-get update -q && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends "$pkg"; } >"$log" 2>&1; then
      cat "$log" >&2
      fail "could not install $pkg"
    fi
    return 0
  done
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- Contents, modes and control data.
dpkg-deb -c "$deb" >"$work/list"
for want in \
  '-rwxr-xr-x (root/root|0/0) .* ./usr/bin/bully$' \
  '-rw-r--r-- (root/root|0/0) .* ./usr/lib/systemd/system/bully@.service$' \
  '-rw-r--r-- (root/root|0/0) .* ./usr/lib/sysusers.d/bully.conf$' \
  '-rw-r----- (root/root|0/0) .* ./etc/default/bully$' \
  '-rw-r--r-- (root/root|0/0) .* ./usr/share/man/man8/bully.8.gz$' \
  '-rw-r--r-- (root/root|0/0) .* ./usr/share/doc/bully/copyright$'; do
  grep -Eq -- "$want" "$work/list" || { cat "$work/list" >&2; fail "dpkg-deb -c has no line like: $want"; }
done
ok "contents: $(grep -vc '/$' "$work/list") files: bully, bully@.service, sysusers.d/bully.conf, /etc/default/bully (0640), bully.8.gz, copyright"
dpkg-deb --ctrl-tarfile "$deb" | tar -x -C "$work" ./conffiles ./control
grep -qx /etc/default/bully "$work/conffiles" || fail "conffiles lacks /etc/default/bully: $(cat "$work/conffiles")"
dpkg-deb -I "$deb" | grep -E ' conffiles *$' >/dev/null || fail "dpkg-deb -I lists no conffiles member"
for field in "Package: bully" "Version: $version" "Architecture: $arch"; do
  grep -qx "$field" "$work/control" || { cat "$work/control" >&2; fail "control lacks '$field'"; }
done
ok "control: bully $version $arch, /etc/default/bully a conffile"

# --- The files themselves.
root=$work/root
dpkg-deb -x "$deb" "$root"
machine=$(od -An -tx1 -j18 -N2 "$root/usr/bin/bully" | tr -d ' \n')
case "$arch:$machine" in
  amd64:3e00 | arm64:b700) ok "usr/bin/bully is an ELF for $arch" ;;
  *) fail "usr/bin/bully has ELF machine $machine, not $arch" ;;
esac
grep -q 'Copyright (c) .* bully developers' "$root/usr/share/doc/bully/copyright" \
  || fail "copyright file lacks the LICENSE text"
man=$work/bully.8
zcat "$root/usr/share/man/man8/bully.8.gz" >"$man"
grep -q "^\.TH BULLY 8 .*\"bully $version\"" "$man" || fail "bully(8) is not marked version $version"
if command -v groff >/dev/null; then
  warnings=$(LC_ALL=C.UTF-8 groff -man -ww -z "$man" 2>&1)
  [ -z "$warnings" ] || fail "groff warns about bully(8): $warnings"
  ok "bully(8) renders without warnings"
fi

# Every flag of `bully --help` has its variable in /etc/default/bully and its entry in bully(8).
run_bully=()
if [ "$native" = yes ]; then run_bully=("$root/usr/bin/bully")
elif command -v qemu-aarch64-static >/dev/null && [ "$arch" = arm64 ]; then
  run_bully=(qemu-aarch64-static "$root/usr/bin/bully")
fi
if [ ${#run_bully[@]} -gt 0 ]; then
  [ "$("${run_bully[@]}" --version)" = "bully $version" ] || fail "the packaged bully is not version $version"
  flags=$("${run_bully[@]}" --help | grep -oE '^ +--[a-z-]+' | tr -d ' ' | sort -u)
  [ -n "$flags" ] || fail "no flags found in bully --help"
  n=0
  for flag in $flags; do
    var=BULLY_$(echo "${flag#--}" | tr 'a-z-' 'A-Z_')
    grep -q "^#$var=" "$root/etc/default/bully" || fail "/etc/default/bully lacks #$var="
    grep -qF -- "$(echo "$flag" | sed 's/-/\\-/g')" "$man" || fail "bully(8) lacks $flag"
    n=$((n + 1))
  done
  for var in BULLY_PORT BULLY_NAME; do
    grep -q "^#$var=" "$root/etc/default/bully" || fail "/etc/default/bully lacks #$var="
  done
  ok "$n flags of bully --help, each in /etc/default/bully (commented) and in bully(8)"
else
  echo "deb-check: skipped: running the $arch binary (no emulator)"
fi

# --- The unit: verify, and its security exposure (must stay "OK": 4.9 or less).
need systemd systemd-analyze
unit=$root/usr/lib/systemd/system/bully@.service
exposure() {
  systemd-analyze security --offline=yes --threshold=49 "$@" 2>&1 \
    | sed -n 's/.*Overall exposure level for [^:]*: //p'
}
score=$(exposure "$unit") || fail "systemd-analyze security: above 4.9 ($score)"
ok "systemd-analyze security bully@.service: $score"
# The virtual-IP drop-in of src/dist/README.md, on top of the unit, in a root of its own.
vip=$work/vip
mkdir -p "$vip/etc/systemd/system/bully@vip.service.d" "$vip/usr/lib/systemd/system"
cp "$unit" "$vip/usr/lib/systemd/system/"
awk '/^# \/etc\/systemd\/system\/bully@.service.d\/vip.conf$/ {on=1; next} on && /^```/ {exit} on' \
  src/dist/README.md >"$vip/etc/systemd/system/bully@vip.service.d/vip.conf"
grep -q '^AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW$' "$vip/etc/systemd/system/bully@vip.service.d/vip.conf" \
  || fail "src/dist/README.md has no vip.conf drop-in with AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW"
sed -n '/^# \/etc\/systemd\/system\/bully@.service.d\/vip.conf$/,/^\.fi$/p' "$man" | sed '1d;$d' \
  | diff - "$vip/etc/systemd/system/bully@vip.service.d/vip.conf" >/dev/null \
  || fail "the vip.conf drop-ins of src/dist/README.md and bully(8) differ"
vscore=$(exposure --root="$vip" bully@vip.service) || fail "security with the vip.conf drop-in: above 4.9 ($vscore)"
ok "systemd-analyze security bully@vip.service with src/dist/README.md's vip.conf: $vscore"

# --- The installed unit under a real systemd: its own PID 1 in new pid, mount, network, UTS,
# IPC and cgroup namespaces, with a private /run, /etc/default and console, no generators and
# only the units below, so nothing of the host is started or touched. Checks the settings
# scheme, the sandbox as the node sees it, a restart after kill -9, no restart after exit 2,
# and the virtual-IP hook of src/dist/README.md on a veth pair: refused without vip.conf, working with it.
live=""
sd=""
outer=""
cg=""
stop_live() {
  local p
  for p in $sd $outer; do
    kill -KILL "$p" 2>/dev/null || true
    while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
  done
  sd=""
  outer=""
  [ -n "$cg" ] && [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
  cg=""
}
trap 'stop_live; rm -rf "$work"' EXIT
# Runs a command inside the namespaces of the systemd under test.
in_ns() { nsenter -t "$sd" -a "$@"; }
# poll SECONDS WHAT CMD...: until CMD succeeds; else fails with the node's log.
poll() {
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then
      echo "--- node log:" >&2; tail -n 20 "$live/node.log" >&2 || true
      echo "--- systemd:" >&2; tail -n 20 "$live/console" >&2 || true
      fail "live: not within ${secs}s: $what"
    fi
    sleep 0.2
  done
}
prop() { in_ns systemctl show -P "$2" "$1"; }
details_have() { in_ns /usr/bin/bully status --cluster check --peers "127.0.0.1:$1" --json | grep -- "$2" >/dev/null; }
no_vip() { ! in_ns ip -o -4 addr show dev veth0 | grep 10.0.0.100/24 >/dev/null; }
live_check() {
  local why=""
  if [ "$(id -u)" -ne 0 ]; then why="needs root"
  elif ! unshare --pid --fork --mount --net --cgroup true 2>/dev/null; then why="no namespaces"
  elif [ -d /run/systemd/system ] && [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then why="host systemd without cgroup v2"
  fi
  local base=/sys/fs/cgroup
  [ "$(stat -fc %T $base 2>/dev/null)" = cgroup2fs ] || base=/sys/fs/cgroup/unified
  [ -z "$why" ] && [ "$(stat -fc %T $base 2>/dev/null)" != cgroup2fs ] && why="no cgroup v2 hierarchy"
  if [ -n "$why" ]; then
    [ "${CI:-}" = true ] && fail "live: cannot run the unit under systemd here ($why)"
    echo "deb-check: skipped: the unit under a real systemd ($why)"
    return 0
  fi
  need iputils-arping arping
  need iproute2 ip
  live=$work/live
  mkdir -p "$live/units/bully@check.service.d" "$live/default" "$live/empty"
  : >"$live/console"
  cp /usr/lib/systemd/system/bully@.service "$live/units/"
  local t
  for t in sysinit basic network-online shutdown; do
    printf '[Unit]\nDescription=stub %s\n' "$t" >"$live/units/$t.target"
  done
  printf '[Unit]\nDescription=bully live check\n' >"$live/units/bully-check.target"
  printf '[Service]\nStandardOutput=append:%s/node.log\nStandardError=inherit\n' "$live" \
    >"$live/units/bully@check.service.d/log.conf"
  # The settings scheme: the shipped file with two settings added, then the instance's file.
  { cat /etc/default/bully; printf 'BULLY_ID=3\nBULLY_PORT=5100\nBULLY_STARTUP_DELAY=0\n'; } >"$live/default/bully"
  printf 'BULLY_PORT=5200\n' >"$live/default/bully-check"
  cat >"$live/init" <<INIT
#!/bin/bash
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /run
mount -t cgroup2 none /sys/fs/cgroup
mount --bind "$live/default" /etc/default
mount --bind "$live/console" /dev/console
for d in /usr/lib/systemd/system-generators /lib/systemd/system-generators /etc/systemd/system-generators; do
  if [ -d "\$d" ]; then mount --bind "$live/empty" "\$d"; fi
done
if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi
ip link set lo up
ip link add veth0 type veth peer name veth1
ip link set veth0 up
ip link set veth1 up
exec env container=bully-deb-check SYSTEMD_UNIT_PATH="$live/units" \
  /usr/lib/systemd/systemd --system --unit=bully-check.target --log-target=console
INIT
  chmod +x "$live/init"
  cg=$base/bully-deb-check-$$
  mkdir "$cg"
  bash -c 'echo $$ >"$1/cgroup.procs"; exec unshare --cgroup --pid --fork --mount --uts --ipc --net --mount-proc "$2"' \
    _ "$cg" "$live/init" >>"$live/console" 2>&1 &
  outer=$!
  poll 30 "systemd starts in the namespaces" pgrep -P "$outer" -x systemd
  sd=$(pgrep -P "$outer" -x systemd)
  poll 60 "systemd answers systemctl" in_ns systemctl show -P Version
  local name
  name=$(in_ns hostname -s)

  in_ns systemctl start bully@check.service
  poll 30 "bully@check answers on the port of /etc/default/bully-check" details_have 5200 '"agreed": true'
  details_have 5200 "\"name\": \"$name\"" && details_have 5200 '"id": 3,' \
    || fail "live: the node is not $name (the unit's default) with id 3 (/etc/default/bully)"
  local main
  main=$(prop bully@check.service MainPID)
  in_ns cat "/proc/$main/status" >"$live/status"
  grep -q "^Uid:[[:space:]]*$(id -u bully)[[:space:]]" "$live/status" || fail "live: the node does not run as bully"
  grep -q '^CapEff:[[:space:]]*0*$' "$live/status" || fail "live: the node has capabilities"
  grep -q '^NoNewPrivs:[[:space:]]*1$' "$live/status" || fail "live: NoNewPrivileges is off"
  grep -q '^Seccomp:[[:space:]]*2$' "$live/status" || fail "live: no system call filter"
  in_ns test -f "/run/bully/check/$name.json" || fail "live: no registry record in /run/bully/check"
  ok "live: bully@check runs as bully, no capabilities, seccomp on; /etc/default/bully-check wins (port 5200, id 3, cluster check)"

  in_ns kill -KILL "$main"
  poll 30 "a restart after kill -9" sh -c "[ \"\$(nsenter -t $sd -a systemctl show -P MainPID bully@check.service)\" -gt 0 ] && [ \"\$(nsenter -t $sd -a systemctl show -P MainPID bully@check.service)\" != $main ]"
  poll 30 "the restarted node answers" details_have 5200 '"agreed": true'
  ok "live: restarted after kill -9 ($(prop bully@check.service NRestarts) restart)"

  # The virtual-IP hook of src/dist/README.md: refused by the sandbox alone, working with vip.conf.
  cat >"$live/units/bully@check.service.d/hooks.conf" <<'HOOKS'
[Service]
Environment="BULLY_ON_ELECTED=ip addr replace 10.0.0.100/24 dev veth0 && arping -c 1 -U -I veth0 10.0.0.100"
Environment="BULLY_ON_DEMOTED=ip addr del 10.0.0.100/24 dev veth0 || true"
HOOKS
  in_ns systemctl daemon-reload
  in_ns systemctl restart bully@check.service
  poll 30 "the hook fails without vip.conf" grep -q 'on-elected hook failed' "$live/node.log"
  no_vip || fail "live: the address was added without vip.conf"
  cp "$vip/etc/systemd/system/bully@vip.service.d/vip.conf" "$live/units/bully@check.service.d/"
  in_ns systemctl daemon-reload
  : >"$live/node.log"
  in_ns systemctl restart bully@check.service
  poll 30 "the on-elected hook finishes with vip.conf" grep -q 'on-elected hook finished' "$live/node.log"
  grep -q 'on-elected: Sent 1 probes' "$live/node.log" || fail "live: arping sent nothing"
  in_ns ip -o -4 addr show dev veth0 | grep 10.0.0.100/24 >/dev/null || fail "live: the hook did not add 10.0.0.100"
  in_ns systemctl stop bully@check.service
  no_vip || fail "live: on-demoted did not remove 10.0.0.100"
  [ "$(prop bully@check.service Result) $(prop bully@check.service ExecMainStatus)" = "success 0" ] \
    || fail "live: systemctl stop did not end in exit 0"
  grep -q 'on-demoted hook finished' "$live/node.log" || fail "live: no on-demoted hook on stop"
  ok "live: virtual-IP hook refused without vip.conf; with it ip and arping work, systemctl stop removes the address, exit 0"

  # The built-in virtual IP (--vip): refused without vip.conf (one line, exit 1), held with
  # it, and removed by systemctl stop.
  rm -f "$live/units/bully@check.service.d/vip.conf"
  cat >"$live/units/bully@check.service.d/hooks.conf" <<'HOOKS'
[Service]
Environment="BULLY_VIP=10.0.0.100/24" "BULLY_VIP_DEV=veth0"
HOOKS
  in_ns systemctl daemon-reload
  : >"$live/node.log"
  in_ns systemctl restart bully@check.service || true
  poll 30 "--vip refused without vip.conf" grep -q -- '--vip: needs CAP_NET_ADMIN' "$live/node.log"
  in_ns systemctl stop bully@check.service || true
  no_vip || fail "live: --vip added the address without vip.conf"
  cp "$vip/etc/systemd/system/bully@vip.service.d/vip.conf" "$live/units/bully@check.service.d/"
  in_ns systemctl daemon-reload
  : >"$live/node.log"
  in_ns systemctl restart bully@check.service
  poll 30 "--vip holds 10.0.0.100 with vip.conf" sh -c "nsenter -t $sd -a ip -o -4 addr show dev veth0 | grep -q 10.0.0.100/24"
  poll 30 "bully status shows the address held" details_have 5200 '"held": true'
  in_ns systemctl stop bully@check.service
  no_vip || fail "live: --vip: systemctl stop did not remove 10.0.0.100"
  grep -q 'removed 10.0.0.100/24 on veth0' "$live/node.log" || fail "live: --vip: no removal in the log"
  ok "live: --vip refused without vip.conf (one line naming --vip); with it the node holds 10.0.0.100, systemctl stop removes it"

  # systemctl stop while a hook runs: the node waits for it, then runs on-demoted; systemd
  # must not kill either (it would with KillMode=control-group).
  cat >"$live/units/bully@check.service.d/hooks.conf" <<'HOOKS'
[Service]
Environment="BULLY_ON_ELECTED=sleep 3"
Environment="BULLY_ON_DEMOTED=echo demoted"
HOOKS
  in_ns systemctl daemon-reload
  : >"$live/node.log"
  in_ns systemctl start bully@check.service
  poll 30 "the slow on-elected hook starts" grep -q 'Coordinator is: ' "$live/node.log"
  in_ns systemctl stop bully@check.service
  grep -q 'on-elected hook finished' "$live/node.log" && grep -q 'on-demoted: demoted' "$live/node.log" \
    && ! grep -q 'hook failed' "$live/node.log" \
    || { cat "$live/node.log" >&2; fail "live: systemctl stop killed a hook"; }
  ok "live: systemctl stop lets the running hook finish, then runs on-demoted"

  printf 'BULLY_TIMEOUT=soon\n' >>"$live/default/bully-check"
  in_ns systemctl start bully@check.service || true
  poll 30 "exit 2 on a bad setting" sh -c "[ \"\$(nsenter -t $sd -a systemctl show -P ExecMainStatus bully@check.service)\" = 2 ]"
  sleep 7
  [ "$(prop bully@check.service ActiveState)" = failed ] || fail "live: a node that exited 2 was restarted"
  grep -q -- 'BULLY_TIMEOUT: expected a duration' "$live/node.log" || fail "live: no line naming the bad setting"
  ok "live: a bad setting exits 2, named in the log, and is not restarted"
  stop_live
}

# --- Install, verify the installed unit, run the installed binary.
if [ "$native" != yes ]; then
  echo "deb-check: skipped: dpkg -i ($arch is not this host's architecture)"
  ok "$deb"
  exit 0
fi
was_installed=no
dpkg-query -W -f='${Status}' bully 2>/dev/null | grep 'install ok installed' >/dev/null && was_installed=yes
"${sudo[@]}" dpkg -i "$deb" >"$work/dpkg" 2>&1 || { cat "$work/dpkg" >&2; fail "dpkg -i $deb"; }
dpkg-query -W -f='${Status} ${Version}\n' bully | grep -x "install ok installed $version" >/dev/null \
  || fail "dpkg does not list bully $version as installed"
dpkg-query -W -f='${Conffiles}\n' bully | grep '^ /etc/default/bully ' >/dev/null \
  || fail "the installed package has no conffile /etc/default/bully"
[ "$(stat -c '%a %U' /etc/default/bully)" = "640 root" ] || fail "/etc/default/bully is not 0640 root"
getent passwd bully >/dev/null || fail "dpkg -i created no system user bully"
got=$(/usr/bin/bully --version)
[ "$got" = "bully $version" ] || fail "/usr/bin/bully --version printed '$got'"
ok "dpkg -i: user bully ($(id bully)), /usr/bin/bully --version prints '$got'"
# verify exits 0 on unknown keys (it only warns), so any output fails the check too.
if systemd-analyze verify --man=yes bully@check.service >"$work/verify" 2>&1 && [ ! -s "$work/verify" ]; then
  ok "systemd-analyze verify bully@check.service: no warnings"
else
  cat "$work/verify" >&2
  fail "systemd-analyze verify bully@check.service"
fi
live_check
if [ "$was_installed" = no ]; then
  "${sudo[@]}" dpkg --purge bully >"$work/dpkg" 2>&1 || { cat "$work/dpkg" >&2; fail "dpkg --purge bully"; }
  [ ! -e /usr/bin/bully ] && [ ! -e /etc/default/bully ] || fail "dpkg --purge left /usr/bin/bully or /etc/default/bully"
  ok "dpkg --purge removed it again"
fi
ok "$deb"
