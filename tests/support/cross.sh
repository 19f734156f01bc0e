#!/usr/bin/env bash
# Cross builds for embedded hosts (src/dist/README.md "Embedded hosts").
#
#   cross.sh setup            install the Debian bookworm cross toolchains (idempotent)
#   cross.sh build TARGET...  build static release binaries into target/TARGET/release/bully
#
# TLS=1 builds them with TLS (cargo feature `tls`), with *ring*'s P-256 base-point table left
# out (patched_ring below).
#
# TARGET: aarch64-unknown-linux-musl, armv7-unknown-linux-musleabihf (the small ones, which
# `make cross-test` runs), aarch64-unknown-linux-gnu or armv7-unknown-linux-gnueabihf (static
# glibc, 500 to 650 KiB larger).
#
# The standard library is compiled for TARGET from its source with cargo's `-Z build-std`,
# with the release profile (opt-level "z", LTO) and std features chosen for size. Debian's
# rustc-web is a stable compiler, so this one build sets RUSTC_BOOTSTRAP=1 to allow the
# unstable flag; nothing else in the project does. Override the compiler with RUSTC (it needs
# its library source, `rustup component add rust-src`), cargo with CROSS_CARGO, the linker with
# CARGO_TARGET_<TARGET>_LINKER as usual. CROSS_MAP=1 also writes a linker map next to the
# binary (bully.map), which is how src/dist/README.md's size breakdown was measured.
set -euo pipefail
cd "$(dirname "$0")/../.."

# What `setup` installs, all amd64 (or "all") packages, so no foreign dpkg architecture is
# needed: Debian's newer Rust ("web") and its std source, cross gcc and glibc for both ARMs,
# GCC 11's aarch64 unwinder for musl (see musl_unwinder), and qemu-user to run the results.
packages=(rustc-web cargo-web rust-web-src gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  libgcc-11-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user-static)

# musl for the ARMs comes from Debian's musl-dev:arm64 and musl-dev:armhf, unpacked under
# target/ rather than installed: installing them would need the arm64 and armhf dpkg
# architectures, and adding armhf once broke `apt-get update` on these machines.
musl_root=target/cross/musl
musl_version_file=$musl_root/.unpacked

apt_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing_packages() {
  local p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}

setup() {
  local missing
  missing=$(missing_packages)
  if [ -z "$missing" ] && [ -f "$musl_version_file" ]; then
    echo "cross-setup: toolchains already installed"
    return 0
  fi
  command -v apt-get >/dev/null || {
    echo "cross-setup: needs apt (Debian bookworm); elsewhere see src/dist/README.md \"Embedded hosts\"" >&2
    return 1
  }
  if [ -n "$missing" ]; then
    # shellcheck disable=SC2086 # one package a word
    echo "cross-setup: installing" $missing
    # A mirror that is mid-sync makes `update` fail for one list; the install below still works
    # from the lists that did update, and fails clearly itself if a package is really missing.
    apt_root apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null ||
      echo "cross-setup: apt-get update reported errors; trying the install anyway" >&2
    # shellcheck disable=SC2086
    apt_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install \
      -y -q --no-install-recommends $missing >/dev/null
  fi
  [ -f "$musl_version_file" ] || unpack_musl
}

# Downloads musl-dev for arm64 and armhf with apt-get from the system's own sources, using
# package lists kept under target/ (so the system's lists and architectures stay as they are),
# and unpacks them into $musl_root/{arm64,armhf}. Needs no root.
unpack_musl() {
  local state=$musl_root/apt
  rm -rf "$musl_root"
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/debs"
  state=$(cd "$state" && pwd)
  local opts=(-q -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
    -o Dir::State::status=/dev/null -o Debug::NoLocking=1 -o APT::Sandbox::User=root
    -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o APT::Architectures::=armhf)
  echo "cross-setup: fetching musl-dev for arm64 and armhf into $musl_root"
  apt-get "${opts[@]}" update >/dev/null ||
    echo "cross-setup: apt-get update (arm lists) reported errors; trying the download anyway" >&2
  (cd "$state/debs" && apt-get "${opts[@]}" download musl-dev:arm64 musl-dev:armhf >/dev/null)
  local deb arch
  for deb in "$state"/debs/musl-dev_*.deb; do
    arch=$(dpkg-deb -f "$deb" Architecture)
    dpkg-deb -x "$deb" "$musl_root/$arch"
    dpkg-deb -f "$deb" Version >"$musl_root/$arch/.version"
  done
  rm -rf "$state"
  [ -d "$musl_root/arm64" ] && [ -d "$musl_root/armhf" ] || {
    echo "cross-setup: musl-dev for arm64 or armhf is missing after the download" >&2
    return 1
  }
  touch "$musl_version_file"
}

# Debian arch, GNU triplet and C cross compiler (the linker) of a supported target.
target_info() {
  case "$1" in
    aarch64-unknown-linux-gnu | aarch64-unknown-linux-musl)
      echo arm64 aarch64-linux-musl aarch64-linux-gnu-gcc ;;
    armv7-unknown-linux-gnueabihf | armv7-unknown-linux-musleabihf)
      echo armhf arm-linux-musleabihf arm-linux-gnueabihf-gcc ;;
    *) return 1 ;;
  esac
}

# The unwinder a static musl binary links as libunwind.a (Rust's musl std asks for one; the
# prebuilt musl targets ship LLVM's, which is not in the std source). It is libgcc_eh from the
# gnu cross compiler, as Debian's own musl-gcc wrapper links it, except that on aarch64 GCC 12's
# looks frames up through glibc's _dl_find_object, which musl lacks; GCC 11's walks the
# program headers (dl_iterate_phdr) instead. 32-bit ARM finds its unwind tables through
# __exidx_start/__exidx_end and has no such call.
musl_unwinder() {
  case "$1" in
    aarch64-*) echo /usr/lib/gcc-cross/aarch64-linux-gnu/11/libgcc_eh.a ;;
    armv7-*) arm-linux-gnueabihf-gcc -print-file-name=libgcc_eh.a ;;
  esac
}

# Extra rustc flags that link TARGET against the unpacked musl, and the libunwind.a next to it.
musl_flags() {
  local target=$1 arch triplet lib spec
  read -r arch triplet _ < <(target_info "$target")
  lib=$PWD/$musl_root/$arch/usr/lib/$triplet
  spec=$lib/bully-musl.specs
  # Debian's musl-gcc specs with its /usr paths pointed at the unpacked copy.
  sed "s#/usr/lib/$triplet#$lib#g; s#/usr/include/$triplet#$PWD/$musl_root/$arch/usr/include/$triplet#g" \
    "$lib/musl-gcc.specs" >"$spec"
  ln -sf "$(musl_unwinder "$target")" "$lib/libunwind.a"
  # No self-contained crt objects (build-std has none); the specs supply musl's. Not PIE:
  # the specs start every static program with Scrt1.o, which cannot relocate itself.
  local flags="-C link-self-contained=no -C link-arg=-specs=$spec -L native=$lib"
  flags="$flags -C relocation-model=static"
  # No RELRO segment: musl applies PT_GNU_RELRO only in its dynamic linker, never in a static
  # non-PIE program (its libc.a has no such mprotect), so that data stays writable either way;
  # but ld still aligns its end to the 64 KiB maximum page, padding the file by up to 64 KiB
  # (38 KiB in the aarch64 TLS build of 2026-12-06).
  flags="$flags -C link-arg=-Wl,-z,norelro"
  # The DWARF unwinder (aarch64) calls pthread_once and pthread mutexes through weak
  # references, which a static link leaves at address 0 unless something else pulls them in,
  # while it thinks threads are in use (std pulls in pthread_key_create): the aarch64 linker
  # turns those calls into no-ops, x86_64's into a jump to 0 (measured: a panic there
  # segfaulted). -u links musl's real ones. armv7's unwinder (EHABI) has no such calls.
  case "$target" in
    aarch64-*) flags="$flags -C link-arg=-Wl,-u,pthread_once,-u,pthread_mutex_lock,-u,pthread_mutex_unlock" ;;
  esac
  echo "$flags"
}

# Does `$1` (a rustc) carry the source of its standard library?
has_std_source() {
  local sysroot
  sysroot=$("$1" --print sysroot 2>/dev/null) || return 1
  [ -f "$sysroot/lib/rustlib/src/rust/library/Cargo.lock" ]
}

# The C cross compiler that links `$1`, from CARGO_TARGET_<TARGET>_LINKER or target_info.
linker_of() {
  local var default
  var=$(env_prefix "$1")_LINKER
  read -r _ _ default < <(target_info "$1")
  echo "${!var:-$default}"
}

# CARGO_TARGET_<TARGET>: the prefix of cargo's per-target environment settings.
env_prefix() {
  echo "CARGO_TARGET_$(echo "$1" | tr 'a-z-' 'A-Z_')"
}

# TLS=1: the *ring* that rustls uses, without its 148 KiB P-256 base-point table, which alone
# kept the aarch64 TLS build over 2 MiB (src/dist/README.md "With TLS"): the crates.io
# release named in Cargo.lock, unpacked under target/cross/ring/ with
# .vendor/ring-VERSION-p256-no-base-table.patch applied. Sets ring_args to the cargo argument
# that builds with it: a path override (cargo's `paths`), which replaces a crate by a local
# copy of the same version and dependencies without touching Cargo.lock, so --locked holds
# (a [patch] would rewrite ring's lock entry; a separate lock file would also unpin the
# standard library's own dependencies, which -Z build-std resolves with the same settings).
patched_ring() {
  local cargo=$1 target=$2 version patchfile dir
  version=$(awk '/^name = "ring"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
  patchfile=.vendor/ring-$version-p256-no-base-table.patch
  [ -f "$patchfile" ] || {
    echo "cross: TLS=1 needs $patchfile for ring $version (Cargo.lock); port the last one" >&2
    return 1
  }
  dir=target/cross/ring/ring-$version
  if [ ! -f "$dir/.patched" ] || [ "$patchfile" -nt "$dir/.patched" ]; then
    command -v patch >/dev/null || { echo "cross: TLS=1 needs patch (apt-get install patch)" >&2; return 1; }
    ring_crate() { find "${CARGO_HOME:-$HOME/.cargo}/registry/cache" -name "ring-$version.crate" 2>/dev/null | head -1; }
    [ -n "$(ring_crate)" ] || "$cargo" fetch --locked --target "$target" >/dev/null
    [ -n "$(ring_crate)" ] || { echo "cross: ring-$version.crate not in cargo's cache after cargo fetch" >&2; return 1; }
    rm -rf "$dir"
    mkdir -p target/cross/ring
    tar -xzf "$(ring_crate)" -C target/cross/ring
    patch -s -p1 -d "$dir" <"$patchfile"
    touch "$dir/.patched"
    echo "cross: ring $version patched: $patchfile"
  fi
  ring_args=(--config "paths=[\"$PWD/$dir\"]")
}

# Builds every TARGET given in one cargo run, so that the two final LTO links, each on one
# core, run side by side.
build() {
  local rustc="" cargo="" r t need_setup=""
  for t in "$@"; do
    target_info "$t" >/dev/null || {
      echo "cross: unsupported target $t; supported: aarch64-unknown-linux-musl," \
        "armv7-unknown-linux-musleabihf, aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf" >&2
      return 2
    }
    command -v "$(linker_of "$t")" >/dev/null || need_setup=1
    case "$t" in *-musl*) [ -f "$musl_version_file" ] || need_setup=1 ;; esac
    case "$t" in aarch64-*-musl) [ -f "$(musl_unwinder "$t")" ] || need_setup=1 ;; esac
  done
  for r in ${RUSTC:-/usr/bin/rustc rustc}; do
    if command -v "$r" >/dev/null && has_std_source "$r"; then rustc=$r; break; fi
  done
  if [ -z "$rustc" ] || [ -n "$need_setup" ]; then
    echo "cross: toolchain for $* incomplete; running setup"
    setup
    [ -n "$rustc" ] || { has_std_source /usr/bin/rustc && rustc=/usr/bin/rustc; }
  fi
  [ -n "$rustc" ] || {
    echo "cross: no rustc with its library source (rust-src) here; see src/dist/README.md \"Embedded hosts\"" >&2
    return 1
  }
  # Debian's rustc goes with Debian's cargo; any other with the cargo on PATH.
  if [ -n "${CROSS_CARGO:-}" ]; then cargo=$CROSS_CARGO
  elif [ "$(command -v "$rustc")" = /usr/bin/rustc ]; then cargo=/usr/bin/cargo
  else cargo=cargo
  fi
  local settings=(RUSTC="$rustc" RUSTC_BOOTSTRAP=1) targets=() linker flags
  # TLS (cargo feature `tls`) is left out of the boards' builds to keep their size budgets;
  # TLS=1 builds it in (src/dist/README.md "Embedded hosts" has both sizes).
  local features=(--no-default-features) ring_args=()
  if [ "${TLS:-}" = 1 ]; then
    features=(--no-default-features --features tls)
    patched_ring "$cargo" "$1" || return 1
  fi
  for t in "$@"; do
    linker=$(linker_of "$t")
    command -v "$linker" >/dev/null || {
      echo "cross: linker $linker for $t not found (set $(env_prefix "$t")_LINKER)" >&2
      return 1
    }
    flags="-C target-feature=+crt-static"
    # Unwind tables only where unwinding can pass: the functions that may unwind keep theirs
    # (a panic unwinds as before, which `make cross-test` checks), the ones LLVM proves
    # cannot unwind lose theirs (rustc gives every function one when panics unwind): 32 KiB
    # of .eh_frame and its index on aarch64 (src/dist/README.md "With TLS").
    flags="$flags -C force-unwind-tables=no"
    case "$t" in *-musl*) flags="$flags $(musl_flags "$t")" ;; esac
    [ "${CROSS_MAP:-}" = 1 ] && flags="$flags -C link-arg=-Wl,-Map=$PWD/target/$t/release/bully.map"
    # Per-target flags reach only that target's crates (std included), not build scripts.
    settings+=("$(env_prefix "$t")_LINKER=$linker" "$(env_prefix "$t")_RUSTFLAGS=$flags")
    # ring's C and assembly (TLS=1) are compiled by the same cross gcc.
    settings+=("CC_${t//-/_}=$linker")
    targets+=(--target "$t")
    echo "cross: $t: linker $linker"
  done
  echo "cross: $("$rustc" --version) via $cargo, std built from source"
  # std features for size (measured in src/dist/README.md): backtraces without symbolisation (raw
  # addresses, which an unstripped build of the same commit resolves; a stripped binary has no
  # symbols to show anyway: -130 KiB) and std's size-optimised algorithms; panic-unwind keeps
  # unwinding. RUSTFLAGS would override the per-target flags, so it is cleared.
  env -u RUSTFLAGS "${settings[@]}" \
    "$cargo" build --release --locked "${features[@]}" "${ring_args[@]}" "${targets[@]}" -Z build-std=std,panic_unwind \
    -Z build-std-features=panic-unwind,backtrace,backtrace-trace-only,optimize_for_size
  for t in "$@"; do
    echo "cross: target/$t/release/bully ($([ "${TLS:-}" = 1 ] && echo with || echo without) TLS): $(stat -c %s "target/$t/release/bully") bytes"
  done
}

case "${1:-}" in
  setup) setup ;;
  build)
    [ -n "${2:-}" ] || { echo "usage: cross.sh build TARGET..." >&2; exit 2; }
    shift
    build "$@"
    ;;
  *) echo "usage: cross.sh setup | cross.sh build TARGET..." >&2; exit 2 ;;
esac
