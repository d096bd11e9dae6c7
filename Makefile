# Benchmarks. See engine/bench_test.go.
#
#   make bench                      # the BenchmarkPropose matrix, into $(BENCH_OUT)
#   make bench-profile              # CPU profile of the 3-node gRPC 256-proposer DiskFirst case
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

.PHONY: bench bench-profile

bench:
	$(GO) test -run '^$$' -bench 'BenchmarkPropose/nodes=/transport=/proposers=1$$/' -benchtime $(BENCH_SERIAL_OPS)x -timeout 30m ./engine/ | tee $(BENCH_OUT)
	$(GO) test -run '^$$' -bench 'BenchmarkPropose/nodes=/transport=/proposers=256$$/' -benchtime $(BENCH_PARALLEL_OPS)x -timeout 30m ./engine/ | tee -a $(BENCH_OUT)

bench-profile:
	$(GO) test -run '^$$' -bench 'BenchmarkPropose/nodes=3/transport=grpc/proposers=256/strategy=DiskFirst$$' -benchtime $(BENCH_PARALLEL_OPS)x -timeout 30m -cpuprofile $(BENCH_PROFILE) -o /tmp/engine.test ./engine/
	$(GO) tool pprof -top -nodecount 15 /tmp/engine.test $(BENCH_PROFILE)
