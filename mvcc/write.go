package mvcc

import (
	"bytes"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// writer writes the changes of one request (a put, a delete range, a txn,
// a lease revoke): every change gets the same main revision, rev, and the
// next sub revision.
type writer struct {
	b      *Batch
	rev    int64 // the revision this request creates if it changes anything
	sub    int64 // the next sub revision
	events []*mvccpb.Event
	dirty  bool // something was written to the Pebble batch
}

// changed reports whether the request has changed anything yet.
func (w *writer) changed() bool { return len(w.events) > 0 }

// readRev is the revision the current index reflects at this point of the
// request: the new revision once something changed, the previous one before.
// It is etcd's answer for the header of a range or delete inside a txn.
func (w *writer) readRev() int64 {
	if w.changed() {
		return w.rev
	}
	return w.rev - 1
}

// put writes key = value with lease over prev, the key's current KeyValue
// (nil if the key does not exist), and returns the new KeyValue. Version and
// create revision continue prev's life; without prev a new life starts.
//
// Each change is written to three tables (see the package doc): the current
// index, the key's history and the revision-ordered history; the lease index
// follows the key's lease.
func (w *writer) put(key, value []byte, lease int64, prev *mvccpb.KeyValue) (*mvccpb.KeyValue, error) {
	// The request's bytes are copied: events outlive the request.
	key, value = bytes.Clone(key), bytes.Clone(value)
	kv := &mvccpb.KeyValue{
		Key:            key,
		Value:          value,
		CreateRevision: w.rev,
		ModRevision:    w.rev,
		Version:        1,
		Lease:          lease,
	}
	if prev != nil {
		kv.CreateRevision = prev.CreateRevision
		kv.Version = prev.Version + 1
	}
	ev := &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: cloneKV(kv), PrevKv: cloneKV(prev)}
	rec := encodeKV(kv)
	w.dirty = true
	b := w.b.pb
	if err := b.Set(currentKey(key), rec, nil); err != nil {
		return nil, fmt.Errorf("mvcc: put %q: %w", key, err)
	}
	if err := b.Set(keyRevKey(key, w.rev, w.sub), rec, nil); err != nil {
		return nil, fmt.Errorf("mvcc: put %q: %w", key, err)
	}
	if err := b.Set(historyKey(w.rev, w.sub), encodeEvent(ev), nil); err != nil {
		return nil, fmt.Errorf("mvcc: put %q: %w", key, err)
	}
	if prev != nil && prev.Lease != 0 && prev.Lease != lease {
		if err := b.Delete(leaseKey(prev.Lease, key), nil); err != nil {
			return nil, fmt.Errorf("mvcc: detach %q from lease %d: %w", key, prev.Lease, err)
		}
	}
	if lease != 0 && (prev == nil || prev.Lease != lease) {
		if err := b.Set(leaseKey(lease, key), nil, nil); err != nil {
			return nil, fmt.Errorf("mvcc: attach %q to lease %d: %w", key, lease, err)
		}
	}
	w.sub++
	w.events = append(w.events, ev)
	return kv, nil
}

// del deletes prev.Key, whose current KeyValue is prev. The key's history
// gets a tombstone, so that reads at later revisions see it gone; the event
// carries the deleted KeyValue as PrevKv.
func (w *writer) del(prev *mvccpb.KeyValue) error {
	key := prev.Key
	ev := &mvccpb.Event{
		Type:   mvccpb.Event_DELETE,
		Kv:     &mvccpb.KeyValue{Key: key, ModRevision: w.rev},
		PrevKv: cloneKV(prev),
	}
	w.dirty = true
	b := w.b.pb
	if err := b.Delete(currentKey(key), nil); err != nil {
		return fmt.Errorf("mvcc: delete %q: %w", key, err)
	}
	if err := b.Set(keyRevKey(key, w.rev, w.sub), []byte{recTombstone}, nil); err != nil {
		return fmt.Errorf("mvcc: delete %q: %w", key, err)
	}
	if err := b.Set(historyKey(w.rev, w.sub), encodeEvent(ev), nil); err != nil {
		return fmt.Errorf("mvcc: delete %q: %w", key, err)
	}
	if prev.Lease != 0 {
		if err := b.Delete(leaseKey(prev.Lease, key), nil); err != nil {
			return fmt.Errorf("mvcc: detach %q from lease %d: %w", key, prev.Lease, err)
		}
	}
	w.sub++
	w.events = append(w.events, ev)
	return nil
}

// cloneKV is a new KeyValue message with kv's fields; byte slices are shared.
func cloneKV(kv *mvccpb.KeyValue) *mvccpb.KeyValue {
	if kv == nil {
		return nil
	}
	return &mvccpb.KeyValue{
		Key:            kv.Key,
		Value:          kv.Value,
		CreateRevision: kv.CreateRevision,
		ModRevision:    kv.ModRevision,
		Version:        kv.Version,
		Lease:          kv.Lease,
	}
}
