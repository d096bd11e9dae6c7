# Convenience targets. CI runs only `make test`'s command (see .ci/run).
#
#   make test                       # every test, race detector on (what CI runs)
#   make soak SOAK=10m              # the chaos test for SOAK, then the fault tests 20 times
#   make bench                      # the BenchmarkPropose matrix, into $(BENCH_OUT)
#   make bench-profile              # CPU profile of the 3-node gRPC 256-proposer DiskFirst case
#   make proto                      # regenerate transport/grpcnet/peerpb
#
# One op is one proposal. A single proposer under DiskFirst waits for an
# fsync per op, so it runs fewer ops than the 256-proposer cases.

GO                 ?= go
BENCH_SERIAL_OPS   ?= 20000
BENCH_PARALLEL_OPS ?= 200000
BENCH_OUT          ?= /tmp/bench.txt
BENCH_PROFILE      ?= /tmp/cpu.out

SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -c

SOAK ?= 5m

.PHONY: test soak bench bench-profile proto

test:
	$(GO) test -race -timeout 25m ./...

soak:
	CAIRN_SOAK=$(SOAK) $(GO) test -race -run TestChaos -v -timeout 0 ./engine/
	$(GO) test -race -count 20 -run 'Crash|Partition|Lossy|Failover|Repeated|Joint|Remove' -timeout 0 ./engine/

proto:
	cd transport/grpcnet/peerpb && $(GO) generate

bench:
	$(GO) test -run '^$$' -bench 'BenchmarkPropose/nodes=/transport=/proposers=1$$/' -benchtime $(BENCH_SERIAL_OPS)x -timeout 30m ./engine/ | tee $(BENCH_OUT)
	$(GO) test -run '^$$' -bench 'BenchmarkPropose/nodes=/transport=/proposers=256$$/' -benchtime $(BENCH_PARALLEL_OPS)x -timeout 30m ./engine/ | tee -a $(BENCH_OUT)

bench-profile:
	$(GO) test -run '^$$' -bench 'BenchmarkPropose/nodes=3/transport=grpc/proposers=256/strategy=DiskFirst$$' -benchtime $(BENCH_PARALLEL_OPS)x -timeout 30m -cpuprofile $(BENCH_PROFILE) -o /tmp/engine.test ./engine/
	$(GO) tool pprof -top -nodecount 15 /tmp/engine.test $(BENCH_PROFILE)

# make bench-kv: the embedded DB's benchmarks (package benchmarks), into
# $(BENCH_KV_OUT): BenchmarkKV with one client ($(BENCH_KV_SERIAL_OPS) calls per
# case) and with 64 clients ($(BENCH_KV_PARALLEL_OPS) calls per case), then
# BenchmarkWatchFanout ($(BENCH_KV_ROUNDS) rounds of puts to 10,000 watchers);
# each case $(BENCH_KV_COUNT) times. About 40 s per count on 2 cores.
BENCH_KV_SERIAL_OPS   ?= 2000
BENCH_KV_PARALLEL_OPS ?= 50000
BENCH_KV_ROUNDS       ?= 20
BENCH_KV_COUNT        ?= 1
BENCH_KV_OUT          ?= /tmp/bench-kv.txt

.PHONY: bench-kv

bench-kv:
	$(GO) test -run '^$$' -bench 'BenchmarkKV/nodes=/op=/clients=1$$' -benchtime $(BENCH_KV_SERIAL_OPS)x -count $(BENCH_KV_COUNT) -timeout 30m ./benchmarks/ | tee $(BENCH_KV_OUT)
	$(GO) test -run '^$$' -bench 'BenchmarkKV/nodes=/op=/clients=64$$' -benchtime $(BENCH_KV_PARALLEL_OPS)x -count $(BENCH_KV_COUNT) -timeout 30m ./benchmarks/ | tee -a $(BENCH_KV_OUT)
	$(GO) test -run '^$$' -bench 'BenchmarkWatchFanout' -benchtime $(BENCH_KV_ROUNDS)x -count $(BENCH_KV_COUNT) -timeout 30m ./benchmarks/ | tee -a $(BENCH_KV_OUT)

# make bench-server: BenchmarkServer (package benchmarks), cairn's server
# against a real etcd (the etcd binary on PATH; Debian: apt-get install -y
# etcd-server; without it the impl=etcd cases are skipped) through clientv3,
# into $(BENCH_SERVER_OUT): one client ($(BENCH_SERVER_SERIAL_OPS) calls per
# case), then 64 clients ($(BENCH_SERVER_PARALLEL_OPS) calls per case); each
# case $(BENCH_SERVER_COUNT) times against cairn in this process, cairn as
# `cairn serve` processes, then etcd. About 4 minutes on 2 cores.
BENCH_SERVER_SERIAL_OPS   ?= 3000
BENCH_SERVER_PARALLEL_OPS ?= 20000
BENCH_SERVER_COUNT        ?= 1
BENCH_SERVER_OUT          ?= /tmp/bench-server.txt

.PHONY: bench-server

bench-server:
	$(GO) test -run '^$$' -bench 'BenchmarkServer/impl=/nodes=/op=/clients=1$$' -benchtime $(BENCH_SERVER_SERIAL_OPS)x -count $(BENCH_SERVER_COUNT) -timeout 60m ./benchmarks/ | tee $(BENCH_SERVER_OUT)
	$(GO) test -run '^$$' -bench 'BenchmarkServer/impl=/nodes=/op=/clients=64$$' -benchtime $(BENCH_SERVER_PARALLEL_OPS)x -count $(BENCH_SERVER_COUNT) -timeout 60m ./benchmarks/ | tee -a $(BENCH_SERVER_OUT)

# make bench-read: BenchmarkRead (package benchmarks), reads under each read
# policy (linearizable, lease, eventual) on three nodes, from the leader and
# from a follower, embedded (memnet peers) and over gRPC (clientv3-based
# client, production raft timing), with 1 and 1,000 readers, and the
# linearizable cases under three read_batching settings; into
# $(BENCH_READ_OUT). Op counts per case: embedded $(BENCH_READ_EMBEDDED_SERIAL_OPS)
# (1 reader) and $(BENCH_READ_EMBEDDED_PARALLEL_OPS) (1,000 readers), gRPC
# $(BENCH_READ_GRPC_SERIAL_OPS) and $(BENCH_READ_GRPC_PARALLEL_OPS); each case
# $(BENCH_READ_COUNT) times. About 45 s per count on 2 cores (the clusters start
# once per mode and batching setting, not per case).
BENCH_READ_EMBEDDED_SERIAL_OPS   ?= 20000
BENCH_READ_EMBEDDED_PARALLEL_OPS ?= 300000
BENCH_READ_GRPC_SERIAL_OPS       ?= 5000
BENCH_READ_GRPC_PARALLEL_OPS     ?= 60000
BENCH_READ_COUNT                 ?= 2
BENCH_READ_OUT                   ?= /tmp/bench-read.txt

.PHONY: bench-read

bench-read:
	$(GO) test -run '^$$' -bench 'BenchmarkRead/mode=embedded/policy=/from=/readers=1$$' -benchtime $(BENCH_READ_EMBEDDED_SERIAL_OPS)x -count $(BENCH_READ_COUNT) -timeout 30m ./benchmarks/ | tee $(BENCH_READ_OUT)
	$(GO) test -run '^$$' -bench 'BenchmarkRead/mode=embedded/policy=/from=/readers=1000$$' -benchtime $(BENCH_READ_EMBEDDED_PARALLEL_OPS)x -count $(BENCH_READ_COUNT) -timeout 30m ./benchmarks/ | tee -a $(BENCH_READ_OUT)
	$(GO) test -run '^$$' -bench 'BenchmarkRead/mode=grpc/policy=/from=/readers=1$$' -benchtime $(BENCH_READ_GRPC_SERIAL_OPS)x -count $(BENCH_READ_COUNT) -timeout 30m ./benchmarks/ | tee -a $(BENCH_READ_OUT)
	$(GO) test -run '^$$' -bench 'BenchmarkRead/mode=grpc/policy=/from=/readers=1000$$' -benchtime $(BENCH_READ_GRPC_PARALLEL_OPS)x -count $(BENCH_READ_COUNT) -timeout 30m ./benchmarks/ | tee -a $(BENCH_READ_OUT)
