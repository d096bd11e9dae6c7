package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/lease"
	"github.com/cairn-db/cairn/mvcc"
	"github.com/cairn-db/cairn/watch"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// The error mapping of the package doc: each test accepts the embedded
// error or its remote counterpart.
func isCompacted(err error) bool {
	return errors.Is(err, mvcc.ErrCompacted) || errors.Is(err, rpctypes.ErrCompacted)
}

func isLeaseNotFound(err error) bool {
	return errors.Is(err, lease.ErrNotFound) || errors.Is(err, kv.ErrLeaseNotFound) ||
		errors.Is(err, rpctypes.ErrLeaseNotFound)
}

func isEmptyKey(err error) bool {
	return errors.Is(err, watch.ErrEmptyKey) || errors.Is(err, mvcc.ErrEmptyKey) ||
		errors.Is(err, rpctypes.ErrEmptyKey)
}

// behaviour drives db through the key-value API and checks what it sees.
// It only knows cairn.KV: the embedded and the remote runs execute the very
// same calls. It returns a transcript of the results, with revisions
// relative to its first write and without member ids or terms, so that the
// two runs can also be compared line by line.
func behaviour(t *testing.T, db cairn.KV) []string {
	ctx := ctxT(t, 60*time.Second)
	var out []string
	var base int64
	rel := func(rev int64) int64 { return rev - base }
	rec := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		t.Log(line)
		out = append(out, line)
	}
	check := func(cond bool, format string, args ...any) {
		t.Helper()
		if !cond {
			t.Fatalf(format, args...)
		}
	}
	kvs := func(kvs []*mvccpb.KeyValue) string {
		var b []string
		for _, kv := range kvs {
			b = append(b, fmt.Sprintf("%s=%s@%d/%d/v%d", kv.Key, kv.Value, rel(kv.CreateRevision), rel(kv.ModRevision), kv.Version))
		}
		return "[" + strings.Join(b, " ") + "]"
	}
	put := func(key, val string, opts ...cairn.OpOption) *pb.PutResponse {
		t.Helper()
		resp, err := db.Put(ctx, key, val, opts...)
		check(err == nil, "put %s: %v", key, err)
		return resp
	}
	get := func(key string, opts ...cairn.OpOption) *pb.RangeResponse {
		t.Helper()
		resp, err := db.Get(ctx, key, opts...)
		check(err == nil, "get %s: %v", key, err)
		return resp
	}

	// Puts, and reads of a prefix, a range, with a limit.
	base = put("app/a", "1").Header.Revision
	put("app/b", "2")
	put("app/c", "3")
	check(rel(put("other", "x").Header.Revision) == 3, "revisions not consecutive")
	r := get("app/", cairn.WithPrefix())
	check(len(r.Kvs) == 3 && r.Count == 3 && rel(r.Header.Revision) == 3, "prefix: %v", r)
	rec("prefix %s count=%d rev=%d", kvs(r.Kvs), r.Count, rel(r.Header.Revision))
	r = get("app/a", cairn.WithRange("app/c"))
	check(len(r.Kvs) == 2, "range: %v", r)
	rec("range %s", kvs(r.Kvs))
	r = get("app/", cairn.WithPrefix(), cairn.WithLimit(2))
	check(len(r.Kvs) == 2 && r.More && r.Count == 3, "limit: %v", r)
	rec("limit %s more=%v count=%d", kvs(r.Kvs), r.More, r.Count)
	r = get("", cairn.WithFromKey(), cairn.WithKeysOnly())
	check(len(r.Kvs) == 4 && len(r.Kvs[0].Value) == 0, "from key: %v", r)
	rec("all keys %s", kvs(r.Kvs))

	// An overwrite, and reads at the older revision.
	p := put("app/a", "1b", cairn.WithPrevKV())
	check(rel(p.Header.Revision) == 4 && string(p.PrevKv.GetValue()) == "1", "put prev kv: %v", p)
	rec("put prev %s", kvs([]*mvccpb.KeyValue{p.PrevKv}))
	r = get("app/a", cairn.WithRev(base))
	check(len(r.Kvs) == 1 && string(r.Kvs[0].Value) == "1", "get at rev: %v", r)
	rec("at rev 0 %s", kvs(r.Kvs))
	r = get("app/a")
	check(len(r.Kvs) == 1 && r.Kvs[0].Version == 2 && rel(r.Kvs[0].ModRevision) == 4, "get: %v", r)
	rec("latest %s", kvs(r.Kvs))
	r = get("app/", cairn.WithPrefix(), cairn.WithCountOnly())
	check(len(r.Kvs) == 0 && r.Count == 3, "count only: %v", r)
	rec("count only kvs=%d count=%d", len(r.Kvs), r.Count)

	// Deletes.
	d, err := db.Delete(ctx, "app/b", cairn.WithPrevKV())
	check(err == nil && d.Deleted == 1 && len(d.PrevKvs) == 1 && rel(d.Header.Revision) == 5, "delete: %v %v", d, err)
	rec("delete deleted=%d prev=%s rev=%d", d.Deleted, kvs(d.PrevKvs), rel(d.Header.Revision))
	d, err = db.Delete(ctx, "app/zz")
	check(err == nil && d.Deleted == 0 && rel(d.Header.Revision) == 5, "delete nothing: %v %v", d, err)
	rec("delete nothing deleted=%d rev=%d", d.Deleted, rel(d.Header.Revision))

	// Compare-and-swap: the first swap wins, the second sees the new value.
	cas := &pb.TxnRequest{
		Compare: []*pb.Compare{{
			Key: []byte("app/a"), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL,
			TargetUnion: &pb.Compare_ModRevision{ModRevision: base + 4},
		}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: cairn.PutRequest("app/a", "2")}}},
		Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: cairn.RangeRequest("app/a")}}},
	}
	for i := range 2 {
		tr, err := db.Txn(ctx, cas)
		check(err == nil, "txn: %v", err)
		check(tr.Succeeded == (i == 0), "txn %d succeeded=%v", i, tr.Succeeded)
		if tr.Succeeded {
			rec("cas succeeded rev=%d", rel(tr.Header.Revision))
		} else {
			rec("cas failed current=%s", kvs(tr.Responses[0].GetResponseRange().Kvs))
		}
	}

	// A watch from the first revision, with previous values: the whole
	// history of the prefix, in order, then live events.
	w, err := db.Watch(ctx, "app/", cairn.WithPrefix(), cairn.WithRev(base), cairn.WithPrevKV())
	check(err == nil, "watch: %v", err)
	for _, ev := range collect(t, w, base+6) {
		rec("history %s", event(ev, rel))
	}
	put("app/d", "4")
	for _, ev := range collect(t, w, base+7) {
		rec("live %s", event(ev, rel))
	}
	w.Close()
	_, werr := drain(t, w)
	check(errors.Is(werr, watch.ErrClosed), "watch closed: %v", werr)
	rec("closed watch: ErrClosed")

	// A watch without a start revision sees the writes made after Watch
	// returned.
	w, err = db.Watch(ctx, "live")
	check(err == nil, "watch: %v", err)
	put("live", "1")
	for _, ev := range collect(t, w, base+8) {
		rec("from now %s", event(ev, rel))
	}
	w.Close()
	_, err = db.Watch(ctx, "")
	check(isEmptyKey(err), "watch of the empty key: %v", err)
	rec("watch empty key: refused")

	// Compaction: reads and watches below it fail; a watch from the
	// compact revision itself still works (etcd keeps that revision).
	comp := base + 6
	_, err = db.Compact(ctx, comp)
	check(err == nil, "compact: %v", err)
	_, err = db.Get(ctx, "app/a", cairn.WithRev(base))
	check(isCompacted(err), "get below compaction: %v", err)
	rec("get below compaction: compacted")
	w, err = db.Watch(ctx, "app/", cairn.WithPrefix(), cairn.WithRev(base+1))
	check(err == nil, "watch: %v", err)
	last, werr := drain(t, w)
	check(last.Canceled && last.CompactRevision == comp && last.WatchID == w.ID(), "last response %+v", last)
	check(errors.Is(werr, watch.ErrCompacted), "watch below compaction ended with %v", werr)
	cr, ok := watch.CompactRevision(werr)
	check(ok && cr == comp, "compact revision %d %v", cr, ok)
	rec("watch below compaction: canceled compact=%d err compacted at %d", rel(last.CompactRevision), rel(cr))
	w, err = db.Watch(ctx, "app/", cairn.WithPrefix(), cairn.WithRev(comp))
	check(err == nil, "watch: %v", err)
	for _, ev := range collect(t, w, base+7) {
		rec("from compaction %s", event(ev, rel))
	}
	w.Close()

	// Leases: keys attached to one go with it.
	g, err := db.Grant(ctx, 60)
	check(err == nil && g.ID != 0 && g.TTL == 60, "grant: %v %v", g, err)
	rec("grant ttl=%d", g.TTL)
	lw, err := db.Watch(ctx, "lease/", cairn.WithPrefix())
	check(err == nil, "watch: %v", err)
	put("lease/k", "v", cairn.WithLease(g.ID))
	ttl, err := db.TimeToLive(ctx, g.ID, true)
	check(err == nil && ttl.ID == g.ID && ttl.GrantedTTL == 60 && ttl.TTL > 50 && ttl.TTL <= 60, "ttl: %v %v", ttl, err)
	check(len(ttl.Keys) == 1 && string(ttl.Keys[0]) == "lease/k", "ttl keys: %q", ttl.Keys)
	rec("ttl granted=%d keys=%q", ttl.GrantedTTL, ttl.Keys)
	ka, err := db.KeepAlive(ctx, g.ID)
	check(err == nil && ka.ID == g.ID && ka.TTL == 60, "keepalive: %v %v", ka, err)
	rec("keepalive ttl=%d", ka.TTL)
	ls, err := db.Leases(ctx)
	check(err == nil && len(ls.Leases) == 1 && ls.Leases[0].ID == g.ID, "leases: %v %v", ls, err)
	rec("leases n=%d", len(ls.Leases))
	rv, err := db.Revoke(ctx, g.ID)
	check(err == nil, "revoke: %v", err)
	rec("revoke rev=%d", rel(rv.Header.Revision))
	r = get("lease/", cairn.WithPrefix())
	check(len(r.Kvs) == 0, "keys of a revoked lease: %v", r.Kvs)
	rec("after revoke %s", kvs(r.Kvs))
	for _, ev := range collect(t, lw, rv.Header.Revision) {
		rec("lease watch %s", event(ev, rel))
	}
	lw.Close()
	_, err = db.TimeToLive(ctx, g.ID, false)
	check(isLeaseNotFound(err), "ttl of a revoked lease: %v", err)
	_, err = db.KeepAlive(ctx, g.ID)
	check(isLeaseNotFound(err), "keepalive of a revoked lease: %v", err)
	rec("revoked lease: not found")
	return out
}

func event(ev *mvccpb.Event, rel func(int64) int64) string {
	s := fmt.Sprintf("%s %s=%s@%d", ev.Type, ev.Kv.Key, ev.Kv.Value, rel(ev.Kv.ModRevision))
	if ev.PrevKv != nil {
		s += fmt.Sprintf(" prev=%s@%d", ev.PrevKv.Value, rel(ev.PrevKv.ModRevision))
	}
	return s
}

// collect reads w's events until one at revision until, checking that the
// revisions increase and every response carries w's id.
func collect(t *testing.T, w cairn.Watcher, until int64) []*mvccpb.Event {
	t.Helper()
	var evs []*mvccpb.Event
	timeout := time.After(20 * time.Second)
	for {
		select {
		case r, ok := <-w.C():
			if !ok {
				t.Fatalf("watch %d ended: %v", w.ID(), w.Err())
			}
			if r.WatchID != w.ID() || r.Canceled || r.Fragment {
				t.Fatalf("watch %d: response %+v", w.ID(), r)
			}
			for _, ev := range r.Events {
				if n := len(evs); n > 0 && ev.Kv.ModRevision < evs[n-1].Kv.ModRevision {
					t.Fatalf("watch %d: revision %d after %d", w.ID(), ev.Kv.ModRevision, evs[n-1].Kv.ModRevision)
				}
				if ev.Kv.ModRevision > r.Revision {
					t.Fatalf("watch %d: event at %d in a response at %d", w.ID(), ev.Kv.ModRevision, r.Revision)
				}
				evs = append(evs, ev)
			}
			if n := len(evs); n > 0 && evs[n-1].Kv.ModRevision >= until {
				return evs
			}
		case <-timeout:
			t.Fatalf("watch %d: no event at revision %d after 20s; got %d events", w.ID(), until, len(evs))
		}
	}
}

// drain reads w until its channel closes and returns the last response and
// w.Err().
func drain(t *testing.T, w cairn.Watcher) (watch.Response, error) {
	t.Helper()
	var last watch.Response
	timeout := time.After(20 * time.Second)
	for {
		select {
		case r, ok := <-w.C():
			if !ok {
				if w.Err() == nil {
					t.Fatalf("watch %d closed with a nil Err", w.ID())
				}
				return last, w.Err()
			}
			last = r
		case <-timeout:
			t.Fatalf("watch %d did not end within 20s", w.ID())
		}
	}
}

func openEmbedded(t *testing.T) *cairn.DB {
	t.Helper()
	db, err := cairn.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// diff fails t if the transcripts differ.
func diff(t *testing.T, embedded, remote []string) {
	t.Helper()
	if slices.Equal(embedded, remote) {
		return
	}
	for i := range max(len(embedded), len(remote)) {
		var e, r string
		if i < len(embedded) {
			e = embedded[i]
		}
		if i < len(remote) {
			r = remote[i]
		}
		if e != r {
			t.Errorf("line %d:\n embedded: %s\n remote:   %s", i, e, r)
		}
	}
}
