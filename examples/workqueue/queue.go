package main

import (
	"context"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/watch"
)

// Produce adds an item to the queue under prefix. Names must be unique
// among the items waiting: an item put again before it is claimed is
// handled once, with its last value.
func Produce(ctx context.Context, db cairn.KV, prefix, name, value string) error {
	if _, err := db.Put(ctx, prefix+name, value); err != nil {
		return fmt.Errorf("workqueue: produce %s: %w", name, err)
	}
	return nil
}

// Worker takes items off the queue under Prefix and hands each to Handle.
// Any number of workers may share a queue: each item goes to exactly one
// of them. A worker claims an item with a transaction that deletes it only
// if it is still there, unchanged (same mod revision): of the workers that
// saw it, one succeeds, and only that one handles it.
//
// Claiming deletes the item before Handle runs: a worker that crashes in
// between loses that item (at most once). A claim that fails with an error
// may or may not have been applied; Run then returns the error. A queue
// that must survive both would move each claimed item under a key of the
// worker's lease instead, and reclaim the items of expired leases.
type Worker struct {
	KV     cairn.KV
	Prefix string
	Handle func(key, value string)
}

// Run reads the backlog, then watches the queue from the revision after
// the one it read, and claims every item, until ctx ends (returning nil)
// or an error. If its watch falls behind a compaction, it reads the
// backlog again.
func (w *Worker) Run(ctx context.Context) error {
	for {
		r, err := w.KV.Get(ctx, w.Prefix, cairn.WithPrefix())
		if err != nil {
			return ignoreDone(ctx, fmt.Errorf("workqueue: read backlog: %w", err))
		}
		for _, kv := range r.Kvs {
			if err := w.claim(ctx, kv); err != nil {
				return ignoreDone(ctx, err)
			}
		}
		wt, err := w.KV.Watch(ctx, w.Prefix, cairn.WithPrefix(), cairn.WithRev(r.Header.Revision+1), cairn.WithFilterDelete())
		if err != nil {
			return ignoreDone(ctx, fmt.Errorf("workqueue: watch: %w", err))
		}
		for resp := range wt.C() {
			for _, ev := range resp.Events {
				if ev.Type != mvccpb.PUT {
					continue
				}
				if err := w.claim(ctx, ev.Kv); err != nil {
					wt.Close()
					return ignoreDone(ctx, err)
				}
			}
		}
		if _, compacted := watch.CompactRevision(wt.Err()); !compacted {
			return ignoreDone(ctx, fmt.Errorf("workqueue: watch: %w", wt.Err()))
		}
	}
}

// claim takes item kv if no one else did, and handles it.
func (w *Worker) claim(ctx context.Context, kv *mvccpb.KeyValue) error {
	tr, err := w.KV.Txn(ctx, &pb.TxnRequest{
		Compare: []*pb.Compare{{
			Key: kv.Key, Target: pb.Compare_MOD, Result: pb.Compare_EQUAL,
			TargetUnion: &pb.Compare_ModRevision{ModRevision: kv.ModRevision},
		}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{
			RequestDeleteRange: cairn.DeleteRequest(string(kv.Key)),
		}}},
	})
	if err != nil {
		return fmt.Errorf("workqueue: claim %s: %w", kv.Key, err)
	}
	if tr.Succeeded {
		w.Handle(string(kv.Key), string(kv.Value))
	}
	return nil
}

// ignoreDone turns the error of a run that ended with its context into nil.
func ignoreDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}
