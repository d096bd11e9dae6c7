// Package cairn is the embedded key-value database: a cairn node (package
// engine) running the built-in state machine (package kv), with etcd's v3
// data model, watches and leases, usable from Go with no network.
//
//	db, err := cairn.Open("data")            // a one-node cluster in ./data
//	defer db.Close()
//	_, err = db.Put(ctx, "config/a", "1")
//	resp, err := db.Get(ctx, "config/", cairn.WithPrefix())
//	w, err := db.Watch(ctx, "config/", cairn.WithPrefix(), cairn.WithRev(resp.Header.Revision+1))
//	for r := range w.C() { ... }
//
// Writes go through raft and return once applied on this node. Reads are
// linearizable by default (a read index from the leader, then a local read);
// WithSerializable reads the local state at once.
package cairn
