#!/usr/bin/env bash
# Checks the package `make deb` built (README "Installing the Debian package"):
#
#   deb-check.sh [TARGET]    TARGET: a Rust target triple; default: this host's package
#
# Its contents and conffile, the man page, that /etc/default/bully and bully(8) name every
# flag of `bully --help`, the unit (`systemd-analyze verify`, and `security` at most 4.9
# "OK", with and without the virtual-IP drop-in), then, for this host's architecture, that
# the virtual-IP hook's commands work with only the drop-in's capabilities, and that
# `dpkg -i` installs the package and /usr/bin/bully --version answers. A package of another
# architecture is checked without installing it (its binary runs under qemu-user when present).
# Needs root for dpkg -i and the network namespace; installs systemd, iputils-arping and
# iproute2 when missing. A package that was not installed before is purged at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() { echo "deb-check: FAIL: $*" >&2; exit 1; }
ok() { echo "deb-check: ok: $*"; }

target=${1:-}
version=$(awk -F'"' '/^\[package\]/ {p=1} p && /^version *=/ {print $2; exit}' Cargo.toml)
case "$target" in
  "") arch=$(dpkg --print-architecture) ;;
  x86_64-unknown-linux-gnu) arch=amd64 ;;
  aarch64-unknown-linux-gnu) arch=arm64 ;;
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
dpkg-deb -I "$deb" | grep -Eq ' conffiles *$' || fail "dpkg-deb -I lists no conffiles member"
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
# The README's virtual-IP drop-in, on top of the unit, in a root of its own.
vip=$work/vip
mkdir -p "$vip/etc/systemd/system/bully@vip.service.d" "$vip/usr/lib/systemd/system"
cp "$unit" "$vip/usr/lib/systemd/system/"
awk '/^# \/etc\/systemd\/system\/bully@.service.d\/vip.conf$/ {on=1; next} on && /^```/ {exit} on' \
  README.md >"$vip/etc/systemd/system/bully@vip.service.d/vip.conf"
grep -q '^AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW$' "$vip/etc/systemd/system/bully@vip.service.d/vip.conf" \
  || fail "README has no vip.conf drop-in with AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW"
sed -n '/^# \/etc\/systemd\/system\/bully@.service.d\/vip.conf$/,/^\.fi$/p' "$man" | sed '1d;$d' \
  | diff - "$vip/etc/systemd/system/bully@vip.service.d/vip.conf" >/dev/null \
  || fail "the vip.conf drop-ins of README and bully(8) differ"
vscore=$(exposure --root="$vip" bully@vip.service) || fail "security with the vip.conf drop-in: above 4.9 ($vscore)"
ok "systemd-analyze security bully@vip.service with README's vip.conf: $vscore"

# --- The virtual-IP hook's commands with only the drop-in's capabilities, as a non-root user
# without new privileges, in a network namespace of its own (a veth pair stands in for eth0).
# Without the capabilities the same `ip addr replace` must fail, or the check proves nothing.
if [ "$native" = yes ] && [ "$(id -u)" -eq 0 ] && unshare --net true 2>/dev/null; then
  need iputils-arping arping
  need iproute2 ip
  hook='ip addr replace 10.0.0.100/24 dev veth0 && arping -c 1 -U -I veth0 10.0.0.100'
  as_unit() {
    setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs "$@" -- sh -c "$hook"
  }
  caps=-all,+net_admin,+net_raw
  unshare --net bash -c "
    set -e
    ip link set lo up
    ip link add veth0 type veth peer name veth1
    ip link set veth0 up; ip link set veth1 up
    $(declare -f as_unit); hook='$hook'
    if as_unit --inh-caps=-all --ambient-caps=-all --bounding-set=-all >$work/nocaps 2>&1; then
      echo 'without capabilities the hook worked: the check is void' >&2; exit 1
    fi
    as_unit --inh-caps=$caps --ambient-caps=$caps --bounding-set=$caps >$work/caps 2>&1 \
      || { cat $work/caps >&2; exit 1; }
    ip -o addr show dev veth0 | grep -q '10.0.0.100/24'
  " || fail "the virtual-IP hook does not work with CAP_NET_ADMIN CAP_NET_RAW only"
  ok "virtual-IP hook (ip addr replace, arping -U) works with only CAP_NET_ADMIN CAP_NET_RAW ambient, fails without ($(head -1 "$work/nocaps"))"
else
  echo "deb-check: skipped: the virtual-IP hook's capabilities (needs root, a network namespace and this host's architecture)"
fi

# --- Install, verify the installed unit, run the installed binary.
if [ "$native" != yes ]; then
  echo "deb-check: skipped: dpkg -i ($arch is not this host's architecture)"
  ok "$deb"
  exit 0
fi
was_installed=no
dpkg-query -W -f='${Status}' bully 2>/dev/null | grep -q 'install ok installed' && was_installed=yes
"${sudo[@]}" dpkg -i "$deb" >"$work/dpkg" 2>&1 || { cat "$work/dpkg" >&2; fail "dpkg -i $deb"; }
dpkg-query -W -f='${Status} ${Version}\n' bully | grep -qx "install ok installed $version" \
  || fail "dpkg does not list bully $version as installed"
dpkg-query -W -f='${Conffiles}\n' bully | grep -q '^ /etc/default/bully ' \
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
if [ "$was_installed" = no ]; then
  "${sudo[@]}" dpkg --purge bully >"$work/dpkg" 2>&1 || { cat "$work/dpkg" >&2; fail "dpkg --purge bully"; }
  [ ! -e /usr/bin/bully ] && [ ! -e /etc/default/bully ] || fail "dpkg --purge left /usr/bin/bully or /etc/default/bully"
  ok "dpkg --purge removed it again"
fi
ok "$deb"
