package mvcc

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// Pebble DB a test opens must be closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openPebble opens (or reopens) a Pebble DB in dir on fs. A test that does
// not close it itself gets it closed at cleanup.
func openPebble(t testing.TB, fs vfs.FS, dir string) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FS: fs, Logger: quietLogger{}})
	if err != nil {
		t.Fatalf("pebble.Open(%s): %v", dir, err)
	}
	return db
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic("pebble fatal: " + format)
}

// env is one store on one Pebble DB, closed at the end of the test.
type env struct {
	t    testing.TB
	fs   vfs.FS
	dir  string
	db   *pebble.DB
	s    *Store
	opts Options
}

// newEnv opens a store on a fresh in-memory filesystem.
func newEnv(t testing.TB, opts Options) *env {
	t.Helper()
	e := &env{t: t, fs: vfs.NewMem(), dir: "db", opts: opts}
	e.open()
	t.Cleanup(e.close)
	return e
}

// newDiskEnv opens a store in a temporary directory on disk.
func newDiskEnv(t testing.TB, opts Options) *env {
	t.Helper()
	e := &env{t: t, fs: vfs.Default, dir: t.TempDir(), opts: opts}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	e.t.Helper()
	e.db = openPebble(e.t, e.fs, e.dir)
	s, err := Open(e.db, e.opts)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	e.s = s
}

func (e *env) close() {
	if e.db != nil {
		if err := e.db.Close(); err != nil {
			e.t.Errorf("pebble Close: %v", err)
		}
		e.db = nil
	}
}

// restart closes the Pebble DB and opens it and the store again.
func (e *env) restart() {
	e.t.Helper()
	e.close()
	e.open()
}

// apply runs f in a batch of its own and commits it as raft index idx.
func (e *env) apply(idx uint64, f func(b *Batch)) []Revision {
	e.t.Helper()
	b := e.s.NewBatch()
	defer b.Close()
	f(b)
	revs, err := b.Commit(idx)
	if err != nil {
		e.t.Fatalf("Commit(%d): %v", idx, err)
	}
	return revs
}

// nextIndex is a convenience applied index: one more than the store's.
func (e *env) nextIndex() uint64 { return e.s.AppliedIndex() + 1 }

func (e *env) put(key, value string, opts ...func(*pb.PutRequest)) *pb.PutResponse {
	e.t.Helper()
	req := &pb.PutRequest{Key: []byte(key), Value: []byte(value)}
	for _, o := range opts {
		o(req)
	}
	var resp *pb.PutResponse
	e.apply(e.nextIndex(), func(b *Batch) {
		var err error
		if resp, err = b.Put(req); err != nil {
			e.t.Fatalf("Put(%q): %v", key, err)
		}
	})
	return resp
}

func (e *env) del(key, end string, prevKV bool) *pb.DeleteRangeResponse {
	e.t.Helper()
	req := &pb.DeleteRangeRequest{Key: []byte(key), PrevKv: prevKV}
	if end != "" {
		req.RangeEnd = []byte(end)
	}
	var resp *pb.DeleteRangeResponse
	e.apply(e.nextIndex(), func(b *Batch) {
		var err error
		if resp, err = b.DeleteRange(req); err != nil {
			e.t.Fatalf("DeleteRange(%q, %q): %v", key, end, err)
		}
	})
	return resp
}

func (e *env) txn(req *pb.TxnRequest) (*pb.TxnResponse, error) {
	e.t.Helper()
	var resp *pb.TxnResponse
	var err error
	e.apply(e.nextIndex(), func(b *Batch) { resp, err = b.Txn(req) })
	return resp, err
}

func (e *env) compact(rev int64) error {
	e.t.Helper()
	var err error
	e.apply(e.nextIndex(), func(b *Batch) { _, err = b.Compact(rev) })
	return err
}

func (e *env) rangeReq(req *pb.RangeRequest) *pb.RangeResponse {
	e.t.Helper()
	resp, err := e.s.Range(req)
	if err != nil {
		e.t.Fatalf("Range(%s): %v", fmtMsg(req), err)
	}
	return resp
}

// get is a single-key Range at rev (0: current); nil if absent.
func (e *env) get(key string, rev int64) *mvccpb.KeyValue {
	e.t.Helper()
	resp := e.rangeReq(&pb.RangeRequest{Key: []byte(key), Revision: rev})
	if len(resp.Kvs) == 0 {
		return nil
	}
	return resp.Kvs[0]
}

// dump is every key-value of the store at rev, for before/after checks.
func (e *env) dump(rev int64) *pb.RangeResponse {
	e.t.Helper()
	return e.rangeReq(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev})
}

func kv(key, value string, create, mod, version, lease int64) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: []byte(key), Value: []byte(value), CreateRevision: create, ModRevision: mod, Version: version, Lease: lease}
}

func fmtMsg(m proto.Message) string {
	return prototext.MarshalOptions{}.Format(m)
}

// requireEqual fails unless got and want are equal protobuf messages.
func requireEqual(t testing.TB, what string, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("%s:\n got: %s\nwant: %s", what, fmtMsg(got), fmtMsg(want))
	}
}

// requireErr fails unless err matches target and mentions every part.
func requireErr(t testing.TB, err, target error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", target)
	}
	if !errors.Is(err, target) {
		t.Fatalf("error %q does not match %q", err, target)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not mention %q", err, p)
		}
	}
}

// requireRevisions fails unless two revision lists are equal.
func requireRevisions(t testing.TB, what string, got, want []Revision) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d revisions %s, want %d %s", what, len(got), fmtRevs(got), len(want), fmtRevs(want))
	}
	for i := range want {
		if got[i].Rev != want[i].Rev || len(got[i].Events) != len(want[i].Events) {
			t.Fatalf("%s: revision %d:\n got %s\nwant %s", what, i, fmtRevs(got), fmtRevs(want))
		}
		for j := range want[i].Events {
			requireEqual(t, what+" event", got[i].Events[j], want[i].Events[j])
		}
	}
}

func fmtRevs(revs []Revision) string {
	var b strings.Builder
	for _, r := range revs {
		b.WriteString("\n  rev ")
		b.WriteString(prototext.Format(&pb.ResponseHeader{Revision: r.Rev}))
		for _, ev := range r.Events {
			b.WriteString("\n    ")
			b.WriteString(fmtMsg(ev))
		}
	}
	return b.String()
}

// prefixEnd (clientv3.GetPrefixRangeEnd) returns the smallest key greater than every key with prefix p,
// or nil when there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
