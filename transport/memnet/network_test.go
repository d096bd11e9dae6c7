package memnet

import (
	"slices"
	"sync"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func TestFIFOAndClone(t *testing.T) {
	c := newCluster(t, 1, 1, 2, 3)
	const count = 1000
	var sent []*raftpb.Message
	for i := range count {
		m := app(1, 2, uint64(i))
		sent = append(sent, proto.Clone(m).(*raftpb.Message))
		c.ts[1].Send([]*raftpb.Message{m})
		// The caller keeps its message: changing it after Send must not
		// change what is delivered.
		m.Index = new(uint64(999999))
		m.Entries[0].Data[0] = 'X'
	}
	// A batch keeps its order too, and links do not disturb each other.
	batch := []*raftpb.Message{msg(raftpb.MsgHeartbeat, 3, 2, 1), msg(raftpb.MsgHeartbeat, 3, 2, 2), msg(raftpb.MsgHeartbeat, 3, 2, 3)}
	c.ts[3].Send(batch)

	eventually(t, "all messages delivered", func() bool { return c.recs[2].count() == count+len(batch) })
	var from1, from3 []*raftpb.Message
	for _, m := range c.recs[2].messages() {
		if m.GetFrom() == 1 {
			from1 = append(from1, m)
		} else {
			from3 = append(from3, m)
		}
	}
	for i, m := range from1 {
		if !proto.Equal(m, sent[i]) {
			t.Fatalf("message %d from 1: got %v, want %v", i, m, sent[i])
		}
	}
	for i, m := range from3 {
		if m.GetIndex() != uint64(i+1) {
			t.Fatalf("message %d from 3 has index %d, want %d", i, m.GetIndex(), i+1)
		}
		if m == batch[i] {
			t.Fatalf("message %d from 3 delivered without a clone", i)
		}
	}
	s := quiesce(t, c.net)
	if s.Sent != count+3 || s.Delivered != count+3 || s.Dropped != 0 {
		t.Fatalf("stats = %+v, want %d sent and delivered, none dropped", s, count+3)
	}
	if ls := c.net.LinkStats(3, 2); ls.Sent != 3 || ls.Delivered != 3 {
		t.Fatalf("LinkStats(3, 2) = %+v, want 3 sent and delivered", ls)
	}
}

// reachable sends one heartbeat on every link between ids and returns the
// links it crossed. It also checks that every other one was counted as cut
// and reported to its sender.
func (c *cluster) reachable(t *testing.T) map[link]bool {
	t.Helper()
	before := make(map[link]Stats)
	unreach := make(map[link]int)
	for _, f := range c.ids {
		for _, to := range c.ids {
			if f != to {
				before[link{f, to}] = c.net.LinkStats(f, to)
				unreach[link{f, to}] = c.recs[f].unreachableCount(to)
			}
		}
	}
	for _, f := range c.ids {
		var msgs []*raftpb.Message
		for _, to := range c.ids {
			if f != to {
				msgs = append(msgs, msg(raftpb.MsgHeartbeat, f, to, 0))
			}
		}
		c.ts[f].Send(msgs)
	}
	quiesce(t, c.net)
	out := make(map[link]bool)
	for l, b := range before {
		a := c.net.LinkStats(l.from, l.to)
		delivered, cut := a.Delivered-b.Delivered, a.Cut-b.Cut
		switch {
		case delivered == 1 && cut == 0:
			out[l] = true
		case delivered == 0 && cut == 1:
			eventually(t, "ReportUnreachable of a cut link", func() bool {
				return c.recs[l.from].unreachableCount(l.to) > unreach[l]
			})
		default:
			t.Fatalf("link %v: %d delivered, %d cut; want exactly one of them", l, delivered, cut)
		}
	}
	return out
}

// expectLinks checks that exactly the links for which ok returns true work.
func (c *cluster) expectLinks(t *testing.T, what string, ok func(from, to uint64) bool) {
	t.Helper()
	got := c.reachable(t)
	for _, f := range c.ids {
		for _, to := range c.ids {
			if f == to {
				continue
			}
			if want := ok(f, to); got[link{f, to}] != want {
				t.Errorf("%s: link %d->%d works = %v, want %v", what, f, to, got[link{f, to}], want)
			}
		}
	}
}

func TestPartitionIsolateBlockHeal(t *testing.T) {
	c := newCluster(t, 1, 1, 2, 3, 4, 5)
	all := func(from, to uint64) bool { return true }
	c.expectLinks(t, "initial", all)

	// {1,2} | {3} | {4,5} (4 and 5 unlisted form one more group).
	c.net.Partition([]uint64{1, 2}, []uint64{3})
	group := map[uint64]int{1: 1, 2: 1, 3: 2, 4: 0, 5: 0}
	c.expectLinks(t, "partition", func(f, to uint64) bool { return group[f] == group[to] })

	// A new partition replaces the old one.
	c.net.Partition([]uint64{1})
	c.expectLinks(t, "second partition", func(f, to uint64) bool { return (f == 1) == (to == 1) })
	c.net.Heal()
	c.expectLinks(t, "healed partition", all)

	c.net.Isolate(3)
	c.expectLinks(t, "isolate 3", func(f, to uint64) bool { return f != 3 && to != 3 })

	// Block is one-way and adds to the isolation.
	c.net.Block(1, 2)
	c.expectLinks(t, "isolate 3, block 1->2", func(f, to uint64) bool {
		return f != 3 && to != 3 && !(f == 1 && to == 2)
	})
	if !c.net.Cut(1, 2) || c.net.Cut(2, 1) || c.net.Cut(1, 1) {
		t.Errorf("Cut(1,2), Cut(2,1), Cut(1,1) = %v, %v, %v; want true, false, false",
			c.net.Cut(1, 2), c.net.Cut(2, 1), c.net.Cut(1, 1))
	}

	// Heal removes cuts but keeps link faults.
	c.net.SetLinkFaults(4, 5, Faults{DropRate: 1})
	c.net.Heal()
	c.ts[4].Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 4, 5, 0)})
	quiesce(t, c.net)
	if ls := c.net.LinkStats(4, 5); ls.Lost != 1 {
		t.Errorf("after Heal, link 4->5 lost %d messages, want 1: Heal must keep link faults", ls.Lost)
	}
	c.net.SetFaults(Faults{}) // clears the link's faults too
	c.expectLinks(t, "healed", all)
}

func TestUnreachablePeers(t *testing.T) {
	c := newCluster(t, 1, 1, 2)
	tr1 := c.ts[1]

	// Not added, added but nobody there, added at the wrong node's address,
	// and added but not started.
	tr1.AddPeer(4, Addr(4))
	tr1.AddPeer(5, Addr(2))
	c.net.Transport(6, nil)
	tr1.AddPeer(6, Addr(6))
	for _, to := range []uint64{3, 4, 5, 6} {
		tr1.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, to, 0)})
	}
	s := quiesce(t, c.net)
	if s.Unreachable != 4 || s.Delivered != 0 {
		t.Fatalf("stats = %+v, want 4 unreachable, none delivered", s)
	}
	for _, to := range []uint64{3, 4, 5, 6} {
		eventually(t, "ReportUnreachable", func() bool { return c.recs[1].unreachableCount(to) == 1 })
	}

	// RemovePeer forgets the address.
	tr1.RemovePeer(2)
	tr1.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, 0)})
	eventually(t, "ReportUnreachable(2)", func() bool { return c.recs[1].unreachableCount(2) == 1 })
	if c.recs[2].count() != 0 {
		t.Fatal("message to a removed peer delivered")
	}
}

func TestDeterministicSeed(t *testing.T) {
	run := func(seed uint64) []uint64 {
		c := newCluster(t, seed, 1, 2)
		c.net.SetFaults(Faults{DropRate: 0.5, DuplicateRate: 0.2})
		c.sendApps(1, 2, 300)
		quiesce(t, c.net)
		got := c.recs[2].indexes()
		c.net.Close()
		return got
	}
	a, b, other := run(42), run(42), run(43)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different deliveries:\n%v\n%v", a, b)
	}
	if slices.Equal(a, other) {
		t.Fatalf("seeds 42 and 43 gave the same deliveries: %v", a)
	}
}

// TestConcurrentUse sends on every link from several goroutines while the
// faults change and nodes echo what they receive, to let the race detector
// see every lock, and checks that every message is accounted for.
func TestConcurrentUse(t *testing.T) {
	ids := []uint64{1, 2, 3}
	c := newCluster(t, 7, ids...)
	for _, id := range ids {
		tr := c.ts[id]
		// Sending from Deliver must not deadlock.
		c.recs[id].onDeliver = func(m *raftpb.Message) {
			if m.GetType() == raftpb.MsgApp {
				tr.Send([]*raftpb.Message{msg(raftpb.MsgAppResp, m.GetTo(), m.GetFrom(), m.GetIndex())})
			}
		}
	}
	stop := make(chan struct{})
	var senders, faulter sync.WaitGroup
	for _, from := range ids {
		senders.Go(func() {
			for i := range 1000 {
				to := ids[(int(from)+i)%len(ids)]
				c.ts[from].Send([]*raftpb.Message{app(from, to, uint64(i))})
			}
		})
	}
	faulter.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			switch i % 5 {
			case 0:
				c.net.Partition([]uint64{uint64(i%3 + 1)})
			case 1:
				c.net.SetFaults(Faults{DropRate: 0.1, DuplicateRate: 0.1, ReorderRate: 0.1, MaxDelay: 100_000})
			case 2:
				c.net.Block(1, 2)
			case 3:
				c.net.Heal()
				_ = c.net.Stats()
			case 4:
				c.net.SetLinkFaults(2, 3, Faults{})
			}
		}
	})
	senders.Wait()
	close(stop)
	faulter.Wait()
	c.net.Heal()
	s := quiesce(t, c.net)
	if s.Sent < 3000 {
		t.Fatalf("stats = %+v, want at least 3000 sent", s)
	}
}
