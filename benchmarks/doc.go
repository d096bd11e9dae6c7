// Package benchmarks holds the benchmarks of the embedded database (package
// cairn): Put, Get, Txn and Watch fan-out through cairn.DB, on one node and
// on three nodes over an in-memory network, with data on disk. It has no
// code of its own outside its tests.
//
// Run them with make bench-kv (see the Makefile for the op counts).
package benchmarks
