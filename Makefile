# bully: build, run a demo cluster, test, benchmark, cross-build for embedded hosts.
CARGO ?= cargo
# `make cross TARGET=...`: the target triple of a cross build (README "Embedded hosts").
TARGET ?= aarch64-unknown-linux-musl
# `make cross-test`: the emulators that run the ARM nodes.
QEMU_AARCH64 ?= qemu-aarch64-static
QEMU_ARM ?= qemu-arm-static

# `make run-cluster FAST=1`: short timers for a quick demo.
ifeq ($(FAST),1)
CLUSTER_FLAGS ?= --startup-delay 2s --health-interval 1s
else
CLUSTER_FLAGS ?=
endif

.PHONY: all build run-cluster run-cluster-consul test bench lint clean static cross cross-setup cross-test

all: build

# The release binary, copied to ./bully so `./bully 5004 node4` works from the repo root.
build:
	$(CARGO) build --release
	cp target/release/bully ./bully

# node1..node4 on ports 5001..5004 with ids 1..4; Ctrl-C stops (and deregisters) all four.
run-cluster: build
	bash tests/support/run-cluster.sh $(CLUSTER_FLAGS)

# The same four nodes on Consul; starts `consul agent -dev` when no agent answers at
# $CONSUL_HTTP_ADDR (default 127.0.0.1:8500), and stops what it started on Ctrl-C.
run-cluster-consul: build
	bash tests/support/run-cluster-consul.sh $(CLUSTER_FLAGS)

# Unit tests of the election core, then integration tests with real processes.
test:
	$(CARGO) build --release
	$(CARGO) test --no-fail-fast

# Real clusters of the release binary on loopback: startup, failover, messages, idle memory
# and CPU, binary size; a markdown table on stdout, JSON in target/bench/results.json.
# `make bench QUICK=1`: smaller clusters, fewer kills, a shorter idle window (under a minute).
bench:
	$(CARGO) build --release
	$(CARGO) bench --bench cluster -- $(if $(filter 1,$(QUICK)),--quick)

# A static x86_64 binary: target/x86_64-unknown-linux-gnu/release/bully. `--target` keeps
# crt-static off build scripts and proc macros, which cannot be static.
static:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --locked --target x86_64-unknown-linux-gnu
	@echo "static: target/x86_64-unknown-linux-gnu/release/bully: $$(stat -c %s target/x86_64-unknown-linux-gnu/release/bully) bytes"

# A static binary for TARGET (or several, space-separated) in target/TARGET/release/bully:
# aarch64-unknown-linux-musl, armv7-unknown-linux-musleabihf, or their -gnu/-gnueabihf twins
# (static glibc, larger). The standard library is built for the target from source
# (-Z build-std); the toolchain is installed first when it is missing. See README
# "Embedded hosts".
cross:
	bash tests/support/cross.sh build $(TARGET)

# The Debian bookworm cross toolchains, musl for both ARMs and qemu-user; quiet when installed.
cross-setup:
	bash tests/support/cross.sh setup

# The aarch64 and armv7 musl binaries: static, within their size budgets, unwinding; then
# mixed clusters of an x86_64 node and both ARM nodes under qemu-user elect, fail over after
# kill -9 and hand back.
cross-test:
	bash tests/support/cross.sh build aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf
	BULLY_CROSS_AARCH64=$(CURDIR)/target/aarch64-unknown-linux-musl/release/bully \
	BULLY_CROSS_ARMV7=$(CURDIR)/target/armv7-unknown-linux-musleabihf/release/bully \
	BULLY_CROSS_AARCH64_RUNNER=$(QEMU_AARCH64) BULLY_CROSS_ARMV7_RUNNER=$(QEMU_ARM) \
		$(CARGO) test --test cross -- --ignored --test-threads=1 --nocapture

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -f bully
	rm -rf logs
