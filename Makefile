# bully: build, run a demo cluster, test, benchmark.
CARGO ?= cargo

# `make run-cluster FAST=1`: short timers for a quick demo.
ifeq ($(FAST),1)
CLUSTER_FLAGS ?= --startup-delay 2s --health-interval 1s
else
CLUSTER_FLAGS ?=
endif

.PHONY: all build run-cluster run-cluster-consul test lint clean

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

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -f bully
	rm -rf logs
