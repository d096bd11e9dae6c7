// Package benchmarks holds the benchmarks of the embedded database (package
// cairn): Put, Get, Txn and Watch fan-out through cairn.DB, on one node and
// on three nodes over an in-memory network, with data on disk; of the
// server against a real etcd through the same clientv3 client
// (BenchmarkServer: cairn in-process, cairn as separate processes, etcd);
// and of reads under each consistency policy (BenchmarkRead). It has no code
// of its own outside its tests.
//
// Run them with make bench-kv, make bench-server and make bench-read (see
// the Makefile for the op counts).
package benchmarks
