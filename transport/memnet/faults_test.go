package memnet

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

func TestDropAll(t *testing.T) {
	c := newCluster(t, 1, 1, 2)
	c.net.SetFaults(Faults{DropRate: 1})
	c.sendApps(1, 2, 200)
	s := quiesce(t, c.net)
	if s.Delivered != 0 || s.Lost != 200 || s.Dropped != 200 {
		t.Fatalf("stats = %+v, want all 200 lost", s)
	}
}

func TestDropRate(t *testing.T) {
	c := newCluster(t, 1, 1, 2)
	c.net.SetFaults(Faults{DropRate: 0.3})
	const count = 10000
	// In rounds, so that the receiver's queue never overflows.
	for round := range count / 1000 {
		for i := range 1000 {
			c.ts[1].Send([]*raftpb.Message{app(1, 2, uint64(round*1000+i))})
		}
		quiesce(t, c.net)
	}
	s := c.net.Stats()
	// 0.3 of 10000 has a standard deviation of about 46: ±400 never fails
	// by chance.
	if s.Lost < 2600 || s.Lost > 3400 {
		t.Fatalf("lost %d of %d messages at DropRate 0.3, want 2600..3400", s.Lost, count)
	}
	if s.Delivered+s.Lost != count || uint64(c.recs[2].count()) != s.Delivered {
		t.Fatalf("stats = %+v, handler saw %d: lost and delivered must add up to %d", s, c.recs[2].count(), count)
	}
	// Lost messages are lost silently, as packets are.
	if n := c.recs[1].unreachableCount(2); n != 0 {
		t.Fatalf("ReportUnreachable called %d times for randomly lost messages", n)
	}
	// Survivors keep their order.
	if got := c.recs[2].indexes(); !slices.IsSorted(got) {
		t.Fatal("delivery out of order without ReorderRate")
	}
}

func TestDuplicateRate(t *testing.T) {
	c := newCluster(t, 1, 1, 2)
	c.net.SetFaults(Faults{DuplicateRate: 0.5})
	const count = 2000
	c.sendApps(1, 2, count)
	s := quiesce(t, c.net)
	if s.Duplicated < 800 || s.Duplicated > 1200 {
		t.Fatalf("duplicated %d of %d at DuplicateRate 0.5, want 800..1200", s.Duplicated, count)
	}
	if s.Delivered != count+s.Duplicated {
		t.Fatalf("stats = %+v: every message and every duplicate must be delivered", s)
	}
	seen := make(map[uint64]int)
	msgs := c.recs[2].messages()
	for _, m := range msgs {
		seen[m.GetIndex()]++
	}
	twice := 0
	for i := range uint64(count) {
		switch seen[i] {
		case 1:
		case 2:
			twice++
		default:
			t.Fatalf("message %d delivered %d times", i, seen[i])
		}
	}
	if uint64(twice) != s.Duplicated {
		t.Fatalf("%d messages delivered twice, Stats.Duplicated = %d", twice, s.Duplicated)
	}
	// A duplicate is a copy, not the same message twice.
	for i := 1; i < len(msgs); i++ {
		if msgs[i] == msgs[i-1] {
			t.Fatal("a duplicate shares memory with the original")
		}
	}
}

func TestReorderRate(t *testing.T) {
	c := newCluster(t, 1, 1, 2, 3)
	c.net.SetFaults(Faults{ReorderRate: 0.2})
	c.net.SetLinkFaults(1, 3, Faults{}) // a perfect link beside the bad one
	const count = 500
	c.sendApps(1, 2, count)
	c.sendApps(1, 3, count)
	s := quiesce(t, c.net)

	got := c.recs[2].indexes()
	if len(got) != count {
		t.Fatalf("delivered %d of %d: reordering must not lose messages", len(got), count)
	}
	inversions := 0
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			inversions++
		}
	}
	if inversions == 0 {
		t.Fatal("no message delivered out of order at ReorderRate 0.2")
	}
	if !slices.Equal(slices.Sorted(slices.Values(got)), seq(count)) {
		t.Fatal("reordered delivery is not a permutation of what was sent")
	}
	if ls := c.net.LinkStats(1, 2); ls.Reordered < 50 || ls.Reordered > 150 {
		t.Fatalf("link 1->2 reordered %d of %d at 0.2, want 50..150", ls.Reordered, count)
	}
	if !slices.Equal(c.recs[3].indexes(), seq(count)) {
		t.Fatal("link 1->3 without faults delivered out of order")
	}
	if s.Reordered != c.net.LinkStats(1, 2).Reordered {
		t.Fatalf("Stats.Reordered = %d, want only link 1->2's", s.Reordered)
	}
}

func seq(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i)
	}
	return out
}

func TestDelay(t *testing.T) {
	c := newCluster(t, 1, 1, 2)
	const minDelay, maxDelay = 30 * time.Millisecond, 60 * time.Millisecond
	c.net.SetLinkFaults(1, 2, Faults{MinDelay: minDelay, MaxDelay: maxDelay})
	const count = 20
	sentAt := make([]time.Time, count)
	for i := range count {
		sentAt[i] = time.Now()
		c.ts[1].Send([]*raftpb.Message{app(1, 2, uint64(i))})
	}
	// The other direction is not delayed.
	start := time.Now()
	c.ts[2].Send([]*raftpb.Message{app(2, 1, 0)})
	eventually(t, "undelayed message", func() bool { return c.recs[1].count() == 1 })
	if d := time.Since(start); d >= minDelay {
		t.Logf("undelayed message took %v (a slow machine?)", d)
	}

	s := quiesce(t, c.net)
	rec := c.recs[2]
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, m := range rec.msgs {
		idx := m.GetIndex()
		if idx != uint64(i) {
			t.Fatalf("delivery %d has index %d: delay must keep link order", i, idx)
		}
		if d := rec.at[i].Sub(sentAt[idx]); d < minDelay {
			t.Fatalf("message %d delivered after %v, want at least %v", idx, d, minDelay)
		}
	}
	if s.Delayed != count {
		t.Fatalf("Stats.Delayed = %d, want %d", s.Delayed, count)
	}
}

func TestQueueOverflow(t *testing.T) {
	c := newCluster(t, 1, 1, 2)
	gate := make(chan struct{})
	defer close(gate)
	var once bool
	c.recs[2].onDeliver = func(*raftpb.Message) {
		if !once { // only the delivery goroutine runs this
			once = true
			<-gate
		}
	}
	const extra = 100
	msgs := make([]*raftpb.Message, QueueSize+extra)
	for i := range msgs {
		msgs[i] = app(1, 2, uint64(i))
	}
	c.ts[1].Send(msgs)
	// The delivery goroutine may have taken the first message out of the
	// queue before the rest arrived.
	s := c.net.Stats()
	if s.Overflow != extra && s.Overflow != extra-1 {
		t.Fatalf("overflow = %d, want %d or %d", s.Overflow, extra-1, extra)
	}
	eventually(t, "ReportUnreachable on overflow", func() bool { return c.recs[1].unreachableCount(2) > 0 })
	gate <- struct{}{}
	s = quiesce(t, c.net)
	if s.Delivered+s.Overflow != QueueSize+extra {
		t.Fatalf("stats = %+v: delivered and overflowed must add up to %d", s, QueueSize+extra)
	}
}

func TestFaultsValidate(t *testing.T) {
	bad := []struct {
		f    Faults
		want string
	}{
		{Faults{DropRate: -0.1}, "DropRate"},
		{Faults{DuplicateRate: 1.5}, "DuplicateRate"},
		{Faults{ReorderRate: math.NaN()}, "ReorderRate"},
		{Faults{MinDelay: -1}, "MinDelay"},
		{Faults{MinDelay: 2, MaxDelay: 1}, "MaxDelay"},
		{Faults{ReorderWindow: -1}, "ReorderWindow"},
	}
	for _, b := range bad {
		err := b.f.Validate()
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", b.f, err, b.want)
		}
	}
	if err := (Faults{DropRate: 1, MinDelay: 1, MaxDelay: 1}).Validate(); err != nil {
		t.Errorf("Validate of good faults: %v", err)
	}

	n := New(1)
	defer n.Close()
	defer func() {
		if recover() == nil {
			t.Error("SetFaults with an invalid DropRate did not panic")
		}
	}()
	n.SetFaults(Faults{DropRate: 2})
}
