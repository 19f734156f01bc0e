# bully: build, run a demo cluster, test, benchmark, cross-build for embedded hosts, package for Debian.
CARGO ?= cargo
# `make cross TARGET=...`: the target triple of a cross build (src/dist/README.md "Embedded hosts").
TARGET ?= aarch64-unknown-linux-musl
# Installs a Debian package quietly; refreshes the package lists once if the first try fails.
APT_INSTALL = sh -c 'export DEBIAN_FRONTEND=noninteractive; i="apt-get install -y -qq --no-install-recommends $$0"; \
	$$i >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1; $$i >/dev/null; }'
# `make cross-test`: the emulators that run the ARM nodes.
QEMU_AARCH64 ?= qemu-aarch64-static
QEMU_ARM ?= qemu-arm-static
# `make deb`: the cargo-deb release it installs from crates.io when missing (pinned: the
# package layout follows its version).
CARGO_DEB_VERSION ?= 3.8.0
# `make deb` packages the host's build unless TARGET is given on its command line.
DEB_TARGET := $(if $(filter command line,$(origin TARGET)),$(TARGET))

# `make run-cluster FAST=1`: short timers for a quick demo.
ifeq ($(FAST),1)
CLUSTER_FLAGS ?= --startup-delay 2s --health-interval 1s
else
CLUSTER_FLAGS ?=
endif

.PHONY: all build run-cluster run-cluster-consul test verify bench bench-anchors bench-quorum bench-etcd soak lint \
	clean static cross cross-setup cross-test deb deb-check cargo-deb

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

# Unit tests of the election core, then integration tests with real processes. Installs Consul
# into tools/ first when none is on PATH (apt's output goes to target/install-consul.log), and
# Debian's etcd when no etcd is on PATH (target/install-etcd.log).
test:
	bash tests/support/install-consul.sh --quiet
	bash tests/support/install-etcd.sh --quiet
	@# The network-namespace tests need root and nft; as root, install nft when it is missing.
	-@[ "$$(id -u)" != 0 ] || command -v nft >/dev/null || $(APT_INSTALL) nftables
	@# The TLS tests (tests/tls.rs, tests/registry_tls.rs) make their certificates with openssl.
	-@[ "$$(id -u)" != 0 ] || command -v openssl >/dev/null || $(APT_INSTALL) openssl
	$(CARGO) build --release
	$(CARGO) test --no-fail-fast

# The deep model checks of the election core (tests/model.rs, tests/README.md "Correctness"): more
# faults at once, longer runs, every extreme clock rate; a release build, several minutes.
verify:
	$(CARGO) test --release --test model -- --ignored --test-threads=1 --nocapture

# Real clusters of the release binary on loopback: startup, failover, messages, idle memory
# and CPU, binary size; a markdown table on stdout, JSON in target/bench/results.json.
# `make bench QUICK=1`: smaller clusters, fewer kills, a shorter idle window (under a minute).
# `make bench TLS=1`: every node with mutual TLS (target/bench/results-tls.json); BENCH_ARGS
# passes more, e.g. BENCH_ARGS="--startup 4 --failover 4:30,4:20:20s:stop --idle 60".
bench:
	$(CARGO) build --release
	$(CARGO) bench --bench cluster -- $(if $(filter 1,$(QUICK)),--quick) $(if $(filter 1,$(TLS)),--tls) $(BENCH_ARGS)

# The hostile soak (tests/support/soak.rs) on the release build: five nodes under kill -9,
# SIGSTOP/SIGCONT, SIGHUP, SIGTERM, restarts, duplicate starts, closed output pipes and request
# bursts, then checks that nothing leaked and that the long-lived node's PSS stayed flat.
# `make soak MINUTES=10` (the default); `make test` runs the same for 60 s.
soak:
	$(CARGO) build --release
	$(CARGO) bench --bench soak -- --minutes $(or $(MINUTES),10)

# keepalived (Debian's package), bully and bully --quorum 5, all holding one VIP, on the same
# five hosts in network namespaces, failing over after kill -9, a pulled cable, SIGSTOP of the
# master and a 5 s partition of its side; besides the failover, a client's outage (it connects
# to the VIP every 10 ms) and the time two hosts held the VIP at once. Markdown tables on
# stdout, JSON in target/bench/anchors.json. Needs root; installs keepalived and nftables when
# missing. `make bench-anchors RUNS=10`; `ONLY=bully-quorum` (or keepalived, bully, a comma
# list) re-measures those beside the last figures of the others; `FAULTS=kill,partition`.
# `make bench-anchors TLS=1`: the two bully systems with mutual TLS, certificates for the
# hosts' addresses made by openssl (target/bench/anchors-tls.json, set beside the plain figures).
bench-anchors:
	@# keepalived has no TLS: TLS=1 does not run it.
	-@[ "$(TLS)" = 1 ] || command -v keepalived >/dev/null || $(APT_INSTALL) keepalived
	-@command -v nft >/dev/null || $(APT_INSTALL) nftables
	-@[ "$(TLS)" != 1 ] || command -v openssl >/dev/null || $(APT_INSTALL) openssl
	$(CARGO) build --release
	$(CARGO) bench --bench anchors -- $(if $(RUNS),--runs $(RUNS)) $(if $(ONLY),--only $(ONLY)) \
		$(if $(FAULTS),--faults $(FAULTS)) $(if $(filter 1,$(TLS)),--tls)

# bully's --etcd-lock beside `etcdctl lock` (same 5 s TTL, same worker) on three hosts in network
# namespaces, an etcd member on each: failover after kill -9 of the holder and after its cable is
# pulled, and how long two workers ran at once. A table on stdout, JSON in target/bench/etcd.json.
# Needs root; installs etcd and nftables when missing. `make bench-etcd RUNS=10`.
bench-etcd:
	bash tests/support/install-etcd.sh --quiet
	-@command -v nft >/dev/null || $(APT_INSTALL) nftables
	$(CARGO) build --release
	$(CARGO) bench --bench etcd -- $(if $(RUNS),--runs $(RUNS)) $(if $(ONLY),--only $(ONLY)) \
		$(if $(FAULTS),--faults $(FAULTS))

# Quorum mode (five nodes, 1 s lease): failover after kill -9 and SIGSTOP on loopback, after a
# partition and a pulled cable on hosts in network namespaces, and the Jepsen-style checker of
# tests/partitions.rs with and without --quorum (BULLY_CHAOS_SECS, default 60); a markdown table
# on stdout, JSON in target/bench/quorum.json. The namespace parts need root and nftables
# (installed when missing). `make bench-quorum QUICK=1`: fewer runs, a 30 s checker.
bench-quorum:
	-@[ "$$(id -u)" != 0 ] || command -v nft >/dev/null || $(APT_INSTALL) nftables
	@# tests/tls.rs makes its certificates with the openssl command.
	-@[ "$$(id -u)" != 0 ] || command -v openssl >/dev/null || $(APT_INSTALL) openssl
	$(CARGO) build --release
	$(CARGO) bench --bench quorum -- $(if $(filter 1,$(QUICK)),--quick)

# A static x86_64 binary: target/x86_64-unknown-linux-gnu/release/bully. `--target` keeps
# crt-static off build scripts and proc macros, which cannot be static.
static:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --locked --target x86_64-unknown-linux-gnu
	@echo "static: target/x86_64-unknown-linux-gnu/release/bully: $$(stat -c %s target/x86_64-unknown-linux-gnu/release/bully) bytes"

# A static binary for TARGET (or several, space-separated) in target/TARGET/release/bully:
# aarch64-unknown-linux-musl, armv7-unknown-linux-musleabihf, or their -gnu/-gnueabihf twins
# (static glibc, larger). The standard library is built for the target from source
# (-Z build-std); the toolchain is installed first when it is missing. See src/dist/README.md
# "Embedded hosts". Without TLS (cargo feature `tls`) unless `make cross TLS=1`.
cross:
	bash tests/support/cross.sh build $(TARGET)

# The Debian bookworm cross toolchains, musl for both ARMs and qemu-user; quiet when installed.
cross-setup:
	bash tests/support/cross.sh setup

# The aarch64 and armv7 musl binaries: static, within their size budgets, unwinding; then
# mixed clusters of an x86_64 node and both ARM nodes under qemu-user elect, fail over after
# kill -9 and hand back. `make cross-test TLS=1`: both built with TLS, within 2 MiB, and the
# clusters over mutual TLS.
cross-test:
	bash tests/support/cross.sh build aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf
	BULLY_CROSS_TLS=$(TLS) BULLY_CROSS_AARCH64=$(CURDIR)/target/aarch64-unknown-linux-musl/release/bully \
	BULLY_CROSS_ARMV7=$(CURDIR)/target/armv7-unknown-linux-musleabihf/release/bully \
	BULLY_CROSS_AARCH64_RUNNER=$(QEMU_AARCH64) BULLY_CROSS_ARMV7_RUNNER=$(QEMU_ARM) \
		$(CARGO) test --test cross -- --ignored --test-threads=1 --nocapture

# target/debian/bully_<version>_<arch>.deb: /usr/bin/bully, the systemd unit bully@.service,
# /etc/default/bully and bully(8) (src/dist/README.md "Installing the Debian package").
# `make deb TARGET=aarch64-unknown-linux-musl` packages the static cross build (arm64).
deb: cargo-deb
ifeq ($(DEB_TARGET),)
	$(CARGO) build --release --locked
	$(CARGO) deb --no-build --no-strip --output target/debian/
else
	bash tests/support/cross.sh build $(DEB_TARGET)
	$(CARGO) deb --no-build --no-strip --target $(DEB_TARGET) --output target/debian/
endif

# Builds the package, then checks its contents, verifies the unit, installs it with dpkg -i
# and runs /usr/bin/bully --version (a foreign architecture's package is checked, not installed).
deb-check: deb
	bash tests/support/deb-check.sh $(DEB_TARGET)

# cargo-deb $(CARGO_DEB_VERSION), installed into ~/.cargo/bin unless that version is there.
cargo-deb:
	@$(CARGO) deb --version 2>/dev/null | grep -qxF "cargo-deb $(CARGO_DEB_VERSION)" || { \
		echo "cargo-deb: installing $(CARGO_DEB_VERSION) from crates.io (a few minutes, once)"; \
		$(CARGO) install cargo-deb --version $(CARGO_DEB_VERSION) --locked; }

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	@# The build without TLS (the ARM boards' default) stays clean too.
	$(CARGO) clippy --all-targets --no-default-features -- -D warnings

clean:
	$(CARGO) clean
	rm -f bully
	rm -rf logs
