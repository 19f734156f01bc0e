# bully: build, run a demo cluster, test, benchmark.
CARGO ?= cargo

# `make run-cluster FAST=1`: short timers for a quick demo.
ifeq ($(FAST),1)
CLUSTER_FLAGS ?= --startup-delay 2s --health-interval 1s
else
CLUSTER_FLAGS ?=
endif

.PHONY: all build run-cluster test bench lint clean

all: build

# The release binary, copied to ./bully so `./bully 5004 node4` works from the repo root.
build:
	$(CARGO) build --release
	cp target/release/bully ./bully

# node1..node4 on ports 5001..5004 with ids 1..4; Ctrl-C stops (and deregisters) all four.
run-cluster: build
	bash tests/support/run-cluster.sh $(CLUSTER_FLAGS)

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

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -f bully
	rm -rf logs
