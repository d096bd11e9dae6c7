package memnet

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

const snapTerm, snapIndex = 3, 100

func snapData(size int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func snapMsg(from, to uint64) *raftpb.Message {
	m := msg(raftpb.MsgSnap, from, to, 0)
	m.Snapshot = &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Term:      new(uint64(snapTerm)),
		Index:     new(uint64(snapIndex)),
		ConfState: &raftpb.ConfState{Voters: []uint64{1, 2}},
	}}
	return m
}

// waitSnapReports waits for n snapshot reports at node id and returns them.
func (c *cluster) waitSnapReports(t *testing.T, id uint64, n int) []snapReport {
	t.Helper()
	eventually(t, "ReportSnapshot", func() bool { return len(c.recs[id].snapReports()) >= n })
	return c.recs[id].snapReports()
}

func TestSnapshotTransfer(t *testing.T) {
	c := newCluster(t, 1, 1, 2)
	data := snapData(200<<10 + 17) // several chunks and a partial one
	c.snaps[1].put(snapTerm, snapIndex, data)
	// Deliver must come after Commit: the node installs what it finds.
	committedAtDeliver := make(chan bool, 1)
	c.recs[2].onDeliver = func(m *raftpb.Message) {
		_, ok := c.snaps[2].get(snapTerm, snapIndex)
		committedAtDeliver <- ok
	}

	c.ts[1].Send([]*raftpb.Message{snapMsg(1, 2)})
	reports := c.waitSnapReports(t, 1, 1)
	if !slices.Equal(reports, []snapReport{{2, true}}) {
		t.Fatalf("snapshot reports = %v, want [{2 true}]", reports)
	}
	if !<-committedAtDeliver {
		t.Fatal("MsgSnap delivered before the snapshot was committed")
	}
	got, ok := c.snaps[2].get(snapTerm, snapIndex)
	if !ok || !bytes.Equal(got, data) {
		t.Fatalf("receiver has %d bytes (committed %v), want the sender's %d", len(got), ok, len(data))
	}
	msgs := c.recs[2].messages()
	if len(msgs) != 1 || msgs[0].GetType() != raftpb.MsgSnap || msgs[0].GetSnapshot().GetMetadata().GetIndex() != snapIndex {
		t.Fatalf("receiver got %v, want the MsgSnap", msgs)
	}
	s := quiesce(t, c.net)
	if s.SnapshotsOK != 1 || s.SnapshotsFailed != 0 || s.Delivered != 1 {
		t.Fatalf("stats = %+v, want one snapshot delivered", s)
	}
	if _, commits, aborts := c.snaps[2].counts(); commits != 1 || aborts != 0 {
		t.Fatalf("receiver store: %d commits, %d aborts; want 1, 0", commits, aborts)
	}
}

func TestSnapshotFailures(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, c *cluster)
		check func(t *testing.T, s Stats)
	}{
		{"partitioned", func(t *testing.T, c *cluster) { c.net.Partition([]uint64{1}, []uint64{2}) },
			func(t *testing.T, s Stats) {
				if s.Cut != 1 {
					t.Errorf("Cut = %d, want 1", s.Cut)
				}
			}},
		{"dropped", func(t *testing.T, c *cluster) { c.net.SetFaults(Faults{DropRate: 1}) },
			func(t *testing.T, s Stats) {
				if s.Lost != 1 {
					t.Errorf("Lost = %d, want 1", s.Lost)
				}
			}},
		{"missing on sender", func(t *testing.T, c *cluster) { c.snaps[1].remove(snapTerm, snapIndex) },
			func(t *testing.T, s Stats) {
				if s.Failed != 1 {
					t.Errorf("Failed = %d, want 1", s.Failed)
				}
			}},
		{"receiver not started", func(t *testing.T, c *cluster) {
			c.ts[2].Close()
			c.net.Transport(2, c.snaps[2])
		}, func(t *testing.T, s Stats) {
			if s.Unreachable != 1 {
				t.Errorf("Unreachable = %d, want 1", s.Unreachable)
			}
		}},
		{"receiver without store", func(t *testing.T, c *cluster) {
			c.ts[2].Close()
			c.start(t, 2, nil)
		}, func(t *testing.T, s Stats) {
			if s.Failed != 1 {
				t.Errorf("Failed = %d, want 1", s.Failed)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 1, 1, 2)
			c.snaps[1].put(snapTerm, snapIndex, snapData(1000))
			tc.setup(t, c)
			c.ts[1].Send([]*raftpb.Message{snapMsg(1, 2)})
			reports := c.waitSnapReports(t, 1, 1)
			s := quiesce(t, c.net)
			if got := c.recs[1].snapReports(); !slices.Equal(got, []snapReport{{2, false}}) {
				t.Fatalf("snapshot reports = %v (first %v), want exactly one [{2 false}]", got, reports)
			}
			if c.recs[2].count() != 0 {
				t.Fatal("a failed MsgSnap was delivered")
			}
			if _, commits, _ := c.snaps[2].counts(); commits != 0 {
				t.Fatal("a failed snapshot was committed")
			}
			if s.SnapshotsFailed != 1 || s.Dropped != 1 {
				t.Errorf("stats = %+v, want one failed snapshot", s)
			}
			tc.check(t, s)
		})
	}
}

func TestSnapshotResumes(t *testing.T) {
	c := newCluster(t, 1, 1, 2)
	data := snapData(200 << 10)
	const brokenAt = 100<<10 + 123 // not on a chunk boundary
	c.snaps[1].put(snapTerm, snapIndex, data)
	c.snaps[1].failAt = brokenAt

	c.ts[1].Send([]*raftpb.Message{snapMsg(1, 2)})
	if r := c.waitSnapReports(t, 1, 1); r[0] != (snapReport{2, false}) {
		t.Fatalf("first attempt reported %v, want {2 false}", r[0])
	}
	quiesce(t, c.net)
	if got := c.snaps[2].partialLen(snapTerm, snapIndex); got != brokenAt {
		t.Fatalf("receiver kept %d bytes of the broken transfer, want %d", got, brokenAt)
	}
	if _, commits, aborts := c.snaps[2].counts(); commits != 0 || aborts != 1 {
		t.Fatalf("after the broken transfer: %d commits, %d aborts; want 0, 1", commits, aborts)
	}

	c.ts[1].Send([]*raftpb.Message{snapMsg(1, 2)})
	if r := c.waitSnapReports(t, 1, 2); r[1] != (snapReport{2, true}) {
		t.Fatalf("second attempt reported %v, want {2 true}", r[1])
	}
	seeks, _, _ := c.snaps[1].counts()
	if !slices.Equal(seeks, []int64{0, brokenAt}) {
		t.Fatalf("sender's readers seeked to %v, want [0 %d]", seeks, brokenAt)
	}
	got, ok := c.snaps[2].get(snapTerm, snapIndex)
	if !ok || !bytes.Equal(got, data) {
		t.Fatal("resumed snapshot differs from the sender's")
	}
	if n := c.recs[2].count(); n != 1 {
		t.Fatalf("receiver got %d messages, want the one MsgSnap that succeeded", n)
	}
}

// TestSnapshotInterrupted breaks a transfer midway, between two chunks, by
// a partition or by closing either endpoint.
func TestSnapshotInterrupted(t *testing.T) {
	cases := []struct {
		name      string
		interrupt func(c *cluster)
		reported  bool // whether the sender still hears the failure
	}{
		{"partition", func(c *cluster) { c.net.Isolate(2) }, true},
		{"receiver closes", func(c *cluster) { c.ts[2].Close() }, true},
		{"sender closes", func(c *cluster) { c.ts[1].Close() }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 1, 1, 2)
			c.snaps[1].put(snapTerm, snapIndex, snapData(3*chunkSize))
			gate := &readGate{reached: make(chan struct{}), release: make(chan struct{})}
			c.snaps[1].gate = gate
			c.ts[1].Send([]*raftpb.Message{snapMsg(1, 2)})
			<-gate.reached
			// Close waits for the transfer, so interrupt on the side and
			// let the reader go.
			done := make(chan struct{})
			go func() {
				defer close(done)
				tc.interrupt(c)
			}()
			eventually(t, "interruption", func() bool {
				return c.net.Cut(1, 2) || !c.ts[1].running() || !c.ts[2].running()
			})
			close(gate.release)
			<-done
			s := quiesce(t, c.net)
			if s.SnapshotsFailed != 1 || s.Delivered != 0 {
				t.Fatalf("stats = %+v, want one failed snapshot, nothing delivered", s)
			}
			if tc.reported {
				if r := c.waitSnapReports(t, 1, 1); !slices.Equal(r, []snapReport{{2, false}}) {
					t.Fatalf("reports = %v, want [{2 false}]", r)
				}
			}
			if _, commits, aborts := c.snaps[2].counts(); commits != 0 || aborts != 1 {
				t.Fatalf("receiver store: %d commits, %d aborts; want 0, 1", commits, aborts)
			}
			// The chunk in flight when the transfer broke is kept too.
			if got := c.snaps[2].partialLen(snapTerm, snapIndex); got != 2*chunkSize {
				t.Fatalf("receiver kept %d bytes, want the first two chunks (%d)", got, 2*chunkSize)
			}
		})
	}
}

func TestSnapshotDelayed(t *testing.T) {
	c := newCluster(t, 1, 1, 2, 3)
	c.snaps[1].put(snapTerm, snapIndex, snapData(1000))
	const delay = 30 * time.Millisecond
	c.net.SetLinkFaults(1, 2, Faults{MinDelay: delay, MaxDelay: delay})
	start := time.Now()
	c.ts[1].Send([]*raftpb.Message{snapMsg(1, 2)})
	if r := c.waitSnapReports(t, 1, 1); r[0] != (snapReport{2, true}) {
		t.Fatalf("report = %v, want {2 true}", r[0])
	}
	if d := time.Since(start); d < delay {
		t.Fatalf("delayed snapshot reported after %v, want at least %v", d, delay)
	}

	// A transfer waiting out its delay stops as soon as its receiver
	// closes: Close does not wait for the delay.
	c.net.SetLinkFaults(1, 3, Faults{MinDelay: time.Hour, MaxDelay: time.Hour})
	c.ts[1].Send([]*raftpb.Message{snapMsg(1, 3)})
	start = time.Now()
	c.ts[3].Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v with a delayed snapshot pending", d)
	}
	if r := c.waitSnapReports(t, 1, 2); r[1] != (snapReport{3, false}) {
		t.Fatalf("report = %v, want {3 false}", r[1])
	}
	if s := quiesce(t, c.net); s.SnapshotsOK != 1 || s.SnapshotsFailed != 1 {
		t.Fatalf("stats = %+v, want one snapshot delivered and one failed", s)
	}
}

// TestSnapshotQueuedAtClose closes the receiver while its committed MsgSnap
// waits in the receiver's queue: the sender hears that it failed.
func TestSnapshotQueuedAtClose(t *testing.T) {
	c := newCluster(t, 1, 1, 2)
	c.snaps[1].put(snapTerm, snapIndex, snapData(1000))
	entered, gate := make(chan struct{}), make(chan struct{})
	c.recs[2].onDeliver = func(m *raftpb.Message) {
		if m.GetType() == raftpb.MsgHeartbeat {
			close(entered)
			<-gate
		}
	}
	c.ts[1].Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, 0), snapMsg(1, 2)})
	<-entered
	queued := func() bool {
		c.ts[2].inbox.mu.Lock()
		defer c.ts[2].inbox.mu.Unlock()
		return len(c.ts[2].inbox.mu.q) == 1
	}
	eventually(t, "MsgSnap queued behind the blocked heartbeat", queued)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.ts[2].Close()
	}()
	eventually(t, "Close started", func() bool { return !c.ts[2].running() })
	close(gate)
	<-done
	if r := c.waitSnapReports(t, 1, 1); !slices.Equal(r, []snapReport{{2, false}}) {
		t.Fatalf("reports = %v, want [{2 false}]", r)
	}
	if s := quiesce(t, c.net); s.SnapshotsFailed != 1 || s.Delivered != 1 || s.Unreachable != 1 {
		t.Fatalf("stats = %+v, want the heartbeat delivered and the MsgSnap unreachable", s)
	}
}
