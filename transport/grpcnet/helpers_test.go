package grpcnet

import (
	"bytes"
	stdgzip "compress/gzip"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/transporttest"
	"github.com/cairn-db/cairn/transport"
)

func TestMain(m *testing.M) {
	// The race detector makes deflate twenty times slower; the fastest level
	// keeps the large compressed transfers of these tests within seconds
	// and exercises the same code.
	if err := gzip.SetLevel(stdgzip.BestSpeed); err != nil {
		panic(err)
	}
	goleak.VerifyTestMain(m)
}

// recorder is a transport.Handler that keeps what it is given.
type recorder struct {
	transporttest.Observer // PeerState, SnapshotTransferred

	mu          sync.Mutex
	delivered   []*raftpb.Message
	unreachable map[uint64]int
	snapshots   []snapshotReport
	// onDeliver, when set, runs inside Deliver (before the message is kept).
	onDeliver func(m *raftpb.Message)
	// discard, when set, keeps no delivered message (for benchmarks).
	discard bool
}

type snapshotReport struct {
	id uint64
	ok bool
}

func newRecorder() *recorder { return &recorder{unreachable: make(map[uint64]int)} }

func (r *recorder) Deliver(m *raftpb.Message) {
	if r.onDeliver != nil {
		r.onDeliver(m)
	}
	if r.discard {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delivered = append(r.delivered, m)
}

func (r *recorder) ReportUnreachable(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unreachable[id]++
}

func (r *recorder) ReportSnapshot(id uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snapshots = append(r.snapshots, snapshotReport{id, ok})
}

// peerState is one Handler.PeerState call.
type peerState = transporttest.PeerState

// messages returns the delivered messages of class c, in delivery order.
func (r *recorder) messages(c transport.Class) []*raftpb.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*raftpb.Message
	for _, m := range r.delivered {
		if transport.ClassOf(m) == c {
			out = append(out, m)
		}
	}
	return out
}

func (r *recorder) deliveredCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.delivered)
}

func (r *recorder) unreachableCount(id uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unreachable[id]
}

func (r *recorder) snapshotReports() []snapshotReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]snapshotReport(nil), r.snapshots...)
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// logBuffer collects a transport's logs so that a test can look for an error.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) contains(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Contains(b.buf.Bytes(), []byte(s))
}

// node is one started transport with its handler, store and logs.
type node struct {
	*Transport
	rec   *recorder
	store *fileStore
	logs  *logBuffer
}

type nodeOption func(*Options)

func withCluster(id uint64) nodeOption { return func(o *Options) { o.ClusterID = id } }

func withCompression(c transport.Compression) nodeOption {
	return func(o *Options) { o.Compression = c }
}

func withNetwork(n transport.NetworkOptions) nodeOption { return func(o *Options) { o.Network = n } }

// newNode starts a transport with id on 127.0.0.1:0, closed at the end of
// the test.
func newNode(t testing.TB, id uint64, opts ...nodeOption) *node {
	t.Helper()
	n := &node{rec: newRecorder(), store: newFileStore(t), logs: &logBuffer{}}
	o := Options{
		NodeID:      id,
		ClusterID:   0xCA1F,
		ListenAddr:  "127.0.0.1:0",
		Compression: transport.Compression{},
		Snapshots:   n.store,
		Logger:      slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, opt := range opts {
		opt(&o)
	}
	tr, err := New(o)
	if err != nil {
		t.Fatalf("New(%d): %v", id, err)
	}
	n.Transport = tr
	t.Cleanup(func() { tr.Close() })
	if err := tr.Start(n.rec); err != nil {
		t.Fatalf("Start(%d): %v", id, err)
	}
	return n
}

// connect makes a and b peers of each other.
func connect(a, b *node) {
	a.AddPeer(b.opts.NodeID, b.Addr())
	b.AddPeer(a.opts.NodeID, a.Addr())
}

func heartbeat(from, to, commit uint64) *raftpb.Message {
	return &raftpb.Message{
		Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(from), To: proto.Uint64(to),
		Term: proto.Uint64(7), Commit: proto.Uint64(commit),
	}
}

func appendMsg(from, to, index uint64, payload []byte) *raftpb.Message {
	return &raftpb.Message{
		Type: raftpb.MsgApp.Enum(), From: proto.Uint64(from), To: proto.Uint64(to),
		Term: proto.Uint64(7), LogTerm: proto.Uint64(7), Index: proto.Uint64(index - 1),
		Commit: proto.Uint64(index - 1),
		Entries: []*raftpb.Entry{{
			Term: proto.Uint64(7), Index: proto.Uint64(index),
			Type: raftpb.EntryNormal.Enum(), Data: payload,
		}},
	}
}

func snapMsg(from, to, term, index uint64) *raftpb.Message {
	return &raftpb.Message{
		Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(from), To: proto.Uint64(to),
		Term: proto.Uint64(term),
		Snapshot: &raftpb.Snapshot{
			Data: []byte("opaque snapshot descriptor"),
			Metadata: &raftpb.SnapshotMetadata{
				Index: proto.Uint64(index), Term: proto.Uint64(term),
				ConfState: &raftpb.ConfState{Voters: []uint64{from, to}},
			},
		},
	}
}
