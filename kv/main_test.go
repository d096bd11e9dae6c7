package kv

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/engine"
)

// TestMain fails the package if a test leaves a goroutine behind (a watch
// hub not stopped, a Pebble DB not closed).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic("pebble fatal: " + format)
}

// env is a state machine on its own Pebble DB, on an in-memory
// filesystem, closed at the end of the test.
type env struct {
	t  testing.TB
	fs vfs.FS
	db *pebble.DB
	sm *StateMachine
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, fs: vfs.NewMem()}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	e.t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: e.fs, Logger: quietLogger{}})
	if err != nil {
		e.t.Fatalf("pebble.Open: %v", err)
	}
	sm := New(Options{})
	if err := sm.UseStorage(db); err != nil {
		_ = db.Close()
		e.t.Fatalf("UseStorage: %v", err)
	}
	e.db, e.sm = db, sm
}

func (e *env) close() {
	if e.db == nil {
		return
	}
	e.sm.Close()
	if err := e.db.Close(); err != nil {
		e.t.Errorf("pebble Close: %v", err)
	}
	e.db, e.sm = nil, nil
}

// restart closes the state machine and its Pebble DB and opens them again.
func (e *env) restart() {
	e.t.Helper()
	e.close()
	e.open()
}

// do applies req as the next raft entry and returns its response and error.
func (e *env) do(req *pb.InternalRaftRequest) (proto.Message, error) {
	e.t.Helper()
	data, err := Encode(req)
	if err != nil {
		e.t.Fatalf("Encode: %v", err)
	}
	idx, _ := e.sm.AppliedIndex()
	out, err := e.sm.Apply([]engine.Entry{{Index: idx + 1, Term: 1, Data: data}})
	if err != nil {
		e.t.Fatalf("Apply: %v", err)
	}
	r := out[0].(*Result)
	return r.Response, r.Err
}

// must is do for a request that must succeed.
func (e *env) must(req *pb.InternalRaftRequest) proto.Message {
	e.t.Helper()
	resp, err := e.do(req)
	if err != nil {
		e.t.Fatalf("apply %v: %v", req, err)
	}
	return resp
}

func (e *env) put(key, value string) *pb.PutResponse {
	e.t.Helper()
	return e.must(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(key), Value: []byte(value)}}).(*pb.PutResponse)
}

// get reads key at the current revision; "" if absent.
func (e *env) get(key string) string {
	e.t.Helper()
	resp, err := e.sm.Range(&pb.RangeRequest{Key: []byte(key)})
	if err != nil {
		e.t.Fatalf("Range(%q): %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// backup writes a backup of the state machine.
func (e *env) backup() []byte {
	e.t.Helper()
	var buf bytes.Buffer
	n, err := e.sm.WriteBackup(&buf)
	if err != nil || n != int64(buf.Len()) {
		e.t.Fatalf("WriteBackup: %d bytes reported, %d written, %v", n, buf.Len(), err)
	}
	return buf.Bytes()
}

// snapshotInto restores a snapshot of e's state machine into dst, as a
// follower installs one, at index.
func (e *env) snapshotInto(dst *env, index uint64) {
	e.t.Helper()
	sn, err := e.sm.Snapshot()
	if err != nil {
		e.t.Fatal(err)
	}
	defer sn.Release()
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		e.t.Fatal(err)
	}
	if err := dst.sm.Restore(&buf, index); err != nil {
		e.t.Fatalf("Restore: %v", err)
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
