#!/usr/bin/env bash
# Cross builds for embedded hosts (README "Embedded hosts").
#
#   cross.sh setup          install the Debian bookworm cross toolchain for aarch64 (idempotent)
#   cross.sh build TARGET   build a static release binary into target/TARGET/release/bully
#
# `build` uses the first toolchain that has a standard library for TARGET: the rustc on PATH
# (e.g. rustup after `rustup target add TARGET`), else Debian's /usr/bin/rustc (rustc-web).
# When neither has one and TARGET is aarch64, it runs `setup` first. Override with RUSTC and
# CROSS_CARGO, and the linker with CARGO_TARGET_<TARGET>_LINKER as usual.
set -euo pipefail
cd "$(dirname "$0")/../.."

# What `setup` installs: Debian's newer Rust ("web") with its arm64 std, a cross gcc and glibc
# for linking, and qemu-user to run the result. armhf is left out on purpose (see `hint`).
packages=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu
  libc6-dev-arm64-cross qemu-user-static)

setup() {
  local missing=() p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "cross-setup: toolchain already installed"
    return 0
  fi
  command -v apt-get >/dev/null || {
    echo "cross-setup: needs apt (Debian bookworm); elsewhere see README \"Embedded hosts\"" >&2
    return 1
  }
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "cross-setup: installing ${missing[*]}"
  dpkg --print-foreign-architectures | grep -qx arm64 || "${sudo[@]}" dpkg --add-architecture arm64
  # A mirror that is mid-sync makes `update` fail for one list; the install below still works
  # from the lists that did update, and fails clearly itself if a package is really missing.
  "${sudo[@]}" apt-get update -q || echo "cross-setup: apt-get update reported errors; trying the install anyway" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Does `$1` (a rustc) have a standard library for target `$2`?
has_std() {
  local sysroot
  sysroot=$("$1" --print sysroot 2>/dev/null) || return 1
  compgen -G "$sysroot/lib/rustlib/$2/lib/libstd-*.rlib" >/dev/null
}

# Why there is no toolchain for `$1`, and what to do elsewhere.
hint() {
  echo "cross: no Rust standard library for $1 in any toolchain here" >&2
  case "$1" in
    armv7-*|arm-*|thumbv7*)
      cat >&2 <<'MSG'
cross: armv7 cannot be built on these machines: rustup cannot download targets here, and
       Debian bookworm's armhf standard library (libstd-rust-dev:armhf) is Rust 1.85, which
       the rustc-web 1.96 compiler that carries the arm64 one cannot use (adding the armhf
       architecture also broke `apt-get update` on a mirror-sync error). With rustup:
         rustup target add armv7-unknown-linux-gnueabihf
         apt-get install gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
         make cross TARGET=armv7-unknown-linux-gnueabihf
       or use `cross build --release --target armv7-unknown-linux-gnueabihf` (Docker/Podman).
MSG
      ;;
    *)
      echo "cross: install one with \`rustup target add $1\` and a C cross linker for it" >&2
      ;;
  esac
}

# The C cross compiler that links for target `$1`.
default_linker() {
  case "$1" in
    aarch64-unknown-linux-gnu) echo aarch64-linux-gnu-gcc ;;
    armv7-unknown-linux-gnueabihf|arm-unknown-linux-gnueabihf) echo arm-linux-gnueabihf-gcc ;;
    *) echo cc ;;
  esac
}

build() {
  local target=$1 rustc="" cargo="" r
  for r in ${RUSTC:-rustc /usr/bin/rustc}; do
    if command -v "$r" >/dev/null && has_std "$r" "$target"; then rustc=$r; break; fi
  done
  if [ -z "$rustc" ] && [ "$target" = aarch64-unknown-linux-gnu ]; then
    echo "cross: no aarch64 toolchain yet; running setup"
    setup
    has_std /usr/bin/rustc "$target" && rustc=/usr/bin/rustc
  fi
  [ -n "$rustc" ] || { hint "$target"; return 1; }
  # Debian's rustc goes with Debian's cargo; any other with the cargo on PATH.
  if [ -n "${CROSS_CARGO:-}" ]; then cargo=$CROSS_CARGO
  elif [ "$(command -v "$rustc")" = /usr/bin/rustc ]; then cargo=/usr/bin/cargo
  else cargo=cargo
  fi
  local var linker
  var=CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_LINKER
  linker=${!var:-$(default_linker "$target")}
  if ! command -v "$linker" >/dev/null && [ "$target" = aarch64-unknown-linux-gnu ]; then
    echo "cross: no $linker yet; running setup"
    setup
  fi
  command -v "$linker" >/dev/null || {
    echo "cross: linker $linker for $target not found (set $var)" >&2
    return 1
  }
  echo "cross: $("$rustc" --version) via $cargo, linker $linker"
  env RUSTC="$rustc" "$var=$linker" RUSTFLAGS="-C target-feature=+crt-static" \
    "$cargo" build --release --locked --target "$target"
  local bin=target/$target/release/bully
  echo "cross: $bin: $(stat -c %s "$bin") bytes"
}

case "${1:-}" in
  setup) setup ;;
  build) [ -n "${2:-}" ] || { echo "usage: cross.sh build TARGET" >&2; exit 2; }; build "$2" ;;
  *) echo "usage: cross.sh setup | cross.sh build TARGET" >&2; exit 2 ;;
esac
