package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/examples/memkv"
	"github.com/cairn-db/cairn/internal/testcluster"
	"github.com/cairn-db/cairn/transport"
	"github.com/cairn-db/cairn/transport/memnet"
)

// eventLog records the events of one engine (one start of a node), and
// passes them on to the reporter the cluster gave it.
type eventLog struct {
	next engine.Reporter

	mu     sync.Mutex
	events []engine.Event
}

func (l *eventLog) Report(ev engine.Event) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
	if l.next != nil {
		l.next.Report(ev)
	}
}

func (l *eventLog) all() []engine.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// since returns the events recorded after the first n.
func (l *eventLog) since(n int) []engine.Event { return l.all()[n:] }

func (l *eventLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// wait waits until cond holds of the events recorded so far.
func (l *eventLog) wait(t *testing.T, what string, cond func([]engine.Event) bool) []engine.Event {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		evs := l.all()
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; events:\n%s", what, describe(evs))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eventLogs gives every node of a testcluster an eventLog, a fresh one at
// each start.
type eventLogs struct {
	mu   sync.Mutex
	logs map[uint64]*eventLog
}

func (ls *eventLogs) configure(cfg *engine.Config) {
	l := &eventLog{next: cfg.Reporter}
	cfg.Reporter = l
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.logs == nil {
		ls.logs = map[uint64]*eventLog{}
	}
	ls.logs[cfg.NodeID] = l
}

func (ls *eventLogs) of(id uint64) *eventLog {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.logs[id]
}

// volume reports the frequent event types, left out when asserting order.
func volume(ev engine.Event) bool {
	return ev.Type == engine.EventCommitted || ev.Type == engine.EventApplied
}

// only keeps the events of the given types.
func only(evs []engine.Event, types ...engine.EventType) []engine.Event {
	var out []engine.Event
	for _, ev := range evs {
		if slices.Contains(types, ev.Type) {
			out = append(out, ev)
		}
	}
	return out
}

// without drops the events of the given types, and the volume ones.
func without(evs []engine.Event, types ...engine.EventType) []engine.Event {
	var out []engine.Event
	for _, ev := range evs {
		if !volume(ev) && !slices.Contains(types, ev.Type) {
			out = append(out, ev)
		}
	}
	return out
}

// brief renders the fields of an event that its type gives meaning to, for
// comparing sequences.
func brief(ev engine.Event) string {
	switch ev.Type {
	case engine.EventTermChanged:
		return fmt.Sprintf("term %d", ev.Term)
	case engine.EventRoleChanged:
		return fmt.Sprintf("role %s->%s term %d", ev.From, ev.To, ev.Term)
	case engine.EventLeaderChanged:
		return fmt.Sprintf("leader %d term %d", ev.Leader, ev.Term)
	case engine.EventMembershipChanged:
		return fmt.Sprintf("membership voters %v learners %v", ev.Voters, ev.Learners)
	case engine.EventCommitted, engine.EventApplied, engine.EventSnapshotCreated, engine.EventSnapshotInstalled:
		return fmt.Sprintf("%s %d", ev.Type, ev.Index)
	case engine.EventPeerUnreachable, engine.EventPeerReachable:
		return fmt.Sprintf("%s %d %s", ev.Type, ev.Peer, ev.Class)
	case engine.EventSnapshotSent, engine.EventSnapshotReceived:
		return fmt.Sprintf("%s %d peer %d bytes %d", ev.Type, ev.Index, ev.Peer, ev.Bytes)
	}
	return fmt.Sprintf("%s %+v", ev.Type, ev)
}

func briefs(evs []engine.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = brief(ev)
	}
	return out
}

func describe(evs []engine.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  #%d %s\n", ev.Seq, brief(ev))
	}
	return b.String()
}

// checkNumbered fails unless evs are numbered from 1 without a gap and
// their times do not go back.
func checkNumbered(t *testing.T, node uint64, evs []engine.Event) {
	t.Helper()
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("node %d: event %d has Seq %d, want %d:\n%s", node, i, ev.Seq, i+1, describe(evs))
		}
		if ev.Node != node {
			t.Fatalf("node %d: event #%d has Node %d", node, ev.Seq, ev.Node)
		}
		if ev.Time.IsZero() || i > 0 && ev.Time.Before(evs[i-1].Time) {
			t.Fatalf("node %d: event #%d at %v, before #%d at %v", node, ev.Seq, ev.Time, evs[i-1].Seq, evs[i-1].Time)
		}
	}
}

// checkIncreasing fails unless the events of type typ have increasing
// indexes, and the last is at least atLeast.
func checkIncreasing(t *testing.T, node uint64, evs []engine.Event, typ engine.EventType, atLeast uint64) {
	t.Helper()
	var last uint64
	for _, ev := range only(evs, typ) {
		if ev.Index <= last {
			t.Fatalf("node %d: %s at %d after %d", node, typ, ev.Index, last)
		}
		last = ev.Index
	}
	if last < atLeast {
		t.Fatalf("node %d: last %s at %d, want at least %d", node, typ, last, atLeast)
	}
}

// TestEventsElection: the exact events of a fresh three-node cluster's
// first election, on the winner and on a follower. Node 1's election
// timeout is a tenth of the others', so it campaigns alone.
func TestEventsElection(t *testing.T) {
	var logs eventLogs
	c := testcluster.New(t, 3, testcluster.Options{Configure: func(cfg *engine.Config) {
		logs.configure(cfg)
		if cfg.NodeID != 1 {
			cfg.Raft.ElectionTick = 150
		}
	}})
	if l := c.WaitLeader(10 * time.Second); l != 1 {
		t.Fatalf("leader %d, want 1", l)
	}
	// Raft's Bootstrap applies the initial configuration itself; each of
	// the three bootstrap entries, applied after it, reports the whole.
	bootstrap := []string{
		"term 1",
		"membership voters [1 2 3] learners []",
		"membership voters [1 2 3] learners []",
		"membership voters [1 2 3] learners []",
	}
	// The leader's empty entry is index 4 (after three bootstrap entries).
	wantWinner := append(slices.Clone(bootstrap),
		"role follower->pre-candidate term 1",
		"term 2",
		"role pre-candidate->candidate term 2",
		"role candidate->leader term 2",
		"leader 1 term 2",
	)
	wantFollower := append(slices.Clone(bootstrap),
		"term 2",
		"leader 1 term 2",
	)
	for id, want := range map[uint64][]string{1: wantWinner, 2: wantFollower, 3: wantFollower} {
		l := logs.of(id)
		evs := l.wait(t, fmt.Sprintf("node %d applies the leader's entry", id), func(evs []engine.Event) bool {
			a := only(evs, engine.EventApplied)
			return len(a) > 0 && a[len(a)-1].Index >= 4
		})
		checkNumbered(t, id, evs)
		if got := briefs(without(evs)); !slices.Equal(got, want) {
			t.Errorf("node %d events:\n%s\nwant (leaving out committed and applied):\n  %s", id, describe(evs), strings.Join(want, "\n  "))
		}
		checkIncreasing(t, id, evs, engine.EventCommitted, 4)
		checkIncreasing(t, id, evs, engine.EventApplied, 4)
		// An entry is committed before it is applied.
		var committed uint64
		for _, ev := range evs {
			switch ev.Type {
			case engine.EventCommitted:
				committed = ev.Index
			case engine.EventApplied:
				if ev.Index > committed {
					t.Errorf("node %d: applied %d before its commit (committed %d)", id, ev.Index, committed)
				}
			}
		}
	}
	c.Check()
}

// TestEventsFailover: the leader is cut off; the others report it
// unreachable and elect another; the old leader steps down, and after the
// heal hears of the new leader; its peers are reachable again.
func TestEventsFailover(t *testing.T) {
	var logs eventLogs
	c := testcluster.New(t, 3, testcluster.Options{Configure: logs.configure})
	writeN(t, c, "a", 5)
	old := c.WaitLeader(5 * time.Second)
	oldTerm := c.Node(old).Engine.Status().Term
	var others []uint64
	for _, id := range c.Running() {
		if id != old {
			others = append(others, id)
		}
	}
	mark := map[uint64]int{}
	for _, id := range c.Running() {
		mark[id] = logs.of(id).len()
	}

	c.Net.Isolate(old)
	var leader uint64
	deadline := time.Now().Add(10 * time.Second)
	for leader == 0 || leader == old {
		if time.Now().After(deadline) {
			t.Fatal("no new leader among the others")
		}
		time.Sleep(5 * time.Millisecond)
		for _, id := range others {
			if st := c.Node(id).Engine.Status(); st.Role == engine.Leader {
				leader = id
			}
		}
	}
	newTerm := c.Node(leader).Engine.Status().Term
	// Wait until the old leader stepped down and campaigns (PreVote: in
	// vain, and without raising its term).
	logs.of(old).wait(t, "old leader campaigns", func(evs []engine.Event) bool {
		return slices.Contains(briefs(evs[mark[old]:]), fmt.Sprintf("role follower->pre-candidate term %d", oldTerm))
	})
	st := c.Node(leader).Engine.Status()
	if h := st.Connections[old]; h.Control.Up || h.Data.Up || h.Bulk.Up || h.Control.Since.IsZero() {
		t.Errorf("new leader's Status().Connections[%d] = %+v, want every class down, with a time", old, h)
	}
	c.Net.Heal()
	logs.of(old).wait(t, "old leader hears of the new one", func(evs []engine.Event) bool {
		return slices.Contains(briefs(evs), fmt.Sprintf("leader %d term %d", leader, newTerm))
	})

	down := func(peer uint64, reachable bool) []string {
		typ := engine.EventPeerUnreachable
		if reachable {
			typ = engine.EventPeerReachable
		}
		var out []string
		for _, cl := range transport.Classes {
			out = append(out, brief(engine.Event{Type: typ, Peer: peer, Class: cl}))
		}
		return out
	}
	// The old leader: its peers unreachable, then reachable again; its role
	// and leader in the exact order.
	evs := logs.of(old).wait(t, "old leader's peers reachable", func(evs []engine.Event) bool {
		return len(only(evs[mark[old]:], engine.EventPeerReachable)) == 6
	})
	checkNumbered(t, old, evs)
	evs = evs[mark[old]:]
	wantOld := []string{
		fmt.Sprintf("role leader->follower term %d", oldTerm),
		fmt.Sprintf("leader 0 term %d", oldTerm),
		fmt.Sprintf("role follower->pre-candidate term %d", oldTerm),
		fmt.Sprintf("term %d", newTerm),
		fmt.Sprintf("role pre-candidate->follower term %d", newTerm),
		fmt.Sprintf("leader %d term %d", leader, newTerm),
	}
	if got := briefs(without(evs, engine.EventPeerUnreachable, engine.EventPeerReachable)); !slices.Equal(got, wantOld) {
		t.Errorf("old leader %d after the isolation:\n%s\nwant (leaving out peers, committed, applied):\n  %s", old, describe(evs), strings.Join(wantOld, "\n  "))
	}
	var wantPeers []string
	for _, p := range others {
		wantPeers = append(wantPeers, down(p, false)...)
	}
	for _, p := range others {
		wantPeers = append(wantPeers, down(p, true)...)
	}
	gotPeers := briefs(only(evs, engine.EventPeerUnreachable, engine.EventPeerReachable))
	if !slices.Equal(sorted(gotPeers[:6]), sorted(wantPeers[:6])) || !slices.Equal(sorted(gotPeers[6:]), sorted(wantPeers[6:])) {
		t.Errorf("old leader's peer events %v, want %v (each half in any order)", gotPeers, wantPeers)
	}

	// The others: the old leader unreachable, a new leader, the old leader
	// reachable again.
	for _, id := range others {
		evs := logs.of(id).wait(t, fmt.Sprintf("node %d sees %d reachable", id, old), func(evs []engine.Event) bool {
			return len(only(evs[mark[id]:], engine.EventPeerReachable)) == 3
		})
		checkNumbered(t, id, evs)
		evs = evs[mark[id]:]
		got := briefs(only(evs, engine.EventPeerUnreachable, engine.EventPeerReachable))
		if want := append(down(old, false), down(old, true)...); !slices.Equal(got, want) {
			t.Errorf("node %d peer events %v, want %v", id, got, want)
		}
		i := slices.Index(briefs(evs), fmt.Sprintf("leader %d term %d", leader, newTerm))
		if i < 0 || i < slices.Index(briefs(evs), down(old, false)[2]) {
			t.Errorf("node %d: no new leader after the old one became unreachable:\n%s", id, describe(evs))
		}
		if h := c.Node(id).Engine.Status().Connections[old]; !h.Control.Up || !h.Data.Up || !h.Bulk.Up {
			t.Errorf("node %d: Status().Connections[%d] = %+v after the heal, want up", id, old, h)
		}
	}
	c.Check()
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestEventsMembership: adding a learner and promoting it report the
// exact configurations, on every member.
func TestEventsMembership(t *testing.T) {
	var logs eventLogs
	c := testcluster.New(t, 3, testcluster.Options{Configure: logs.configure})
	writeN(t, c, "a", 5)
	mark := map[uint64]int{}
	for _, id := range c.Running() {
		mark[id] = logs.of(id).len()
	}
	c.Join(4)
	leader := c.WaitLeader(5 * time.Second)
	if err := c.Node(leader).Engine.AddLearner(ctxT(t, 10*time.Second), 4, memnet.Addr(4)); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged(10 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Node(leader).Engine.PromoteLearner(ctxT(t, 10*time.Second), 4)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("promote: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // not caught up yet
	}
	want := []string{
		"membership voters [1 2 3] learners [4]",
		"membership voters [1 2 3 4] learners []",
	}
	for _, id := range []uint64{1, 2, 3} {
		evs := logs.of(id).wait(t, fmt.Sprintf("node %d applies the promotion", id), func(evs []engine.Event) bool {
			return len(only(evs[mark[id]:], engine.EventMembershipChanged)) >= 2
		})
		checkNumbered(t, id, evs)
		if got := briefs(only(evs[mark[id]:], engine.EventMembershipChanged)); !slices.Equal(got, want) {
			t.Errorf("node %d membership events %v, want %v", id, got, want)
		}
	}
	c.Check()
}

// TestEventsSnapshotToLaggingFollower: a follower cut off while the log is
// compacted catches up by snapshot: the leader created and sent it, the
// follower received and installed it, all naming the same index, and both
// ends the same bytes.
func TestEventsSnapshotToLaggingFollower(t *testing.T) {
	var logs eventLogs
	c := testcluster.New(t, 3, testcluster.Options{
		Configure: logs.configure,
		Snapshot:  engine.SnapshotConfig{Threshold: 50, CatchUpMargin: 10},
	})
	leader := c.WaitLeader(5 * time.Second)
	lag := leader%3 + 1
	c.Net.Isolate(lag)
	writeN(t, c, "k", 150)
	c.Net.Heal()
	recv := logs.of(lag).wait(t, "the follower installs a snapshot", func(evs []engine.Event) bool {
		return len(only(evs, engine.EventSnapshotInstalled)) > 0
	})
	c.WaitConverged(10 * time.Second)
	leader = c.WaitLeader(5 * time.Second)
	sent := logs.of(leader).wait(t, "the leader reports the snapshot sent", func(evs []engine.Event) bool {
		return len(only(evs, engine.EventSnapshotSent)) > 0
	})
	checkNumbered(t, lag, recv)
	checkNumbered(t, leader, sent)

	s := only(sent, engine.EventSnapshotSent)[0]
	r := only(recv, engine.EventSnapshotReceived)
	in := only(recv, engine.EventSnapshotInstalled)
	if len(r) != 1 || len(in) != 1 {
		t.Fatalf("follower %d: received %v, installed %v, want one each:\n%s", lag, r, in, describe(recv))
	}
	if s.Peer != lag || r[0].Peer != leader || s.Index == 0 || r[0].Index != s.Index || in[0].Index != s.Index {
		t.Errorf("sent %s, received %s, installed %s: want the same snapshot from %d to %d", brief(s), brief(r[0]), brief(in[0]), leader, lag)
	}
	if s.Bytes <= 0 || r[0].Bytes != s.Bytes || s.Duration <= 0 || r[0].Duration <= 0 {
		t.Errorf("sent %+v, received %+v: want the same positive bytes and durations", s, r[0])
	}
	if in[0].Bytes <= 0 || in[0].Bytes >= s.Bytes {
		t.Errorf("installed %d bytes of data, sent a file of %d: want data of a positive size, less than the file", in[0].Bytes, s.Bytes)
	}
	if i, j := slices.IndexFunc(recv, func(ev engine.Event) bool { return ev.Type == engine.EventSnapshotReceived }),
		slices.IndexFunc(recv, func(ev engine.Event) bool { return ev.Type == engine.EventSnapshotInstalled }); i > j {
		t.Errorf("follower: installed before received:\n%s", describe(recv))
	}
	created := only(sent, engine.EventSnapshotCreated)
	if !slices.ContainsFunc(created, func(ev engine.Event) bool { return ev.Index == s.Index }) {
		t.Errorf("leader sent snapshot %d but reported creating %v", s.Index, briefs(created))
	}
	c.Check()
}

// TestEventsFlushLagAndSlowFsync: with MemFirst, a flush lag threshold of
// four entries and a flush only every 200 ms, proposals push the lag over
// the threshold, and the flush brings it back; with a threshold of 1 ns
// every fsync is slow.
func TestEventsFlushLagAndSlowFsync(t *testing.T) {
	var logs eventLogs
	c := testcluster.New(t, 1, testcluster.Options{
		Persistence: engine.PersistenceConfig{Strategy: engine.MemFirst,
			FlushPolicy: engine.FlushPolicy{Threshold: 1000, Interval: 200 * time.Millisecond}},
		Configure: func(cfg *engine.Config) {
			logs.configure(cfg)
			cfg.FlushLagThreshold = 4
			cfg.SlowFsyncThreshold = time.Nanosecond
		},
	})
	writeN(t, c, "k", 10)
	evs := logs.of(1).wait(t, "the lag back under the threshold", func(evs []engine.Event) bool {
		return len(only(evs, engine.EventFlushLagNormal)) > 0 && len(only(evs, engine.EventSlowFsync)) > 0
	})
	checkNumbered(t, 1, evs)
	lag := only(evs, engine.EventFlushLagHigh, engine.EventFlushLagNormal)
	for i, ev := range lag {
		high := i%2 == 0
		switch {
		case high && (ev.Type != engine.EventFlushLagHigh || ev.Lag <= 4):
			t.Errorf("lag event %d: %+v, want flush-lag-high over 4", i, ev)
		case !high && (ev.Type != engine.EventFlushLagNormal || ev.Lag > 2):
			t.Errorf("lag event %d: %+v, want flush-lag-normal at 2 or less", i, ev)
		}
		if ev.LagThreshold != 4 {
			t.Errorf("lag event %d: threshold %d, want 4", i, ev.LagThreshold)
		}
	}
	for _, ev := range only(evs, engine.EventSlowFsync) {
		if ev.Duration <= 0 || ev.SlowThreshold != time.Nanosecond || ev.Index == 0 {
			t.Errorf("slow fsync %+v: want a duration, the threshold and an index", ev)
		}
	}
	c.Check()
}

// TestEventsReadIndexTimedOut: a read on a leader that is cut off gets no
// quorum; after an election timeout its round is retried and reported.
func TestEventsReadIndexTimedOut(t *testing.T) {
	var logs eventLogs
	c := testcluster.New(t, 3, testcluster.Options{Configure: logs.configure})
	writeN(t, c, "a", 3)
	leader := c.WaitLeader(5 * time.Second)
	c.Net.Isolate(leader)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	done := make(chan error, 1)
	go func() { _, err := c.Node(leader).Engine.ReadIndex(ctx); done <- err }()
	evs := logs.of(leader).wait(t, "a read round retried", func(evs []engine.Event) bool {
		return len(only(evs, engine.EventReadIndexTimedOut)) > 0
	})
	cancel()
	if err := <-done; err == nil {
		t.Error("a read on an isolated leader succeeded")
	}
	c.Net.Heal()
	checkNumbered(t, leader, evs)
	if ev := only(evs, engine.EventReadIndexTimedOut)[0]; ev.Count != 1 {
		t.Errorf("read index timed out with Count %d, want 1 (one read waiting)", ev.Count)
	}
	c.Check()
}

// blockingReporter blocks in Report until released.
type blockingReporter struct {
	release chan struct{}
	mu      sync.Mutex
	events  []engine.Event
}

func (r *blockingReporter) Report(ev engine.Event) {
	<-r.release
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *blockingReporter) all() []engine.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// TestEventsOverflow: a reporter that blocks loses the events beyond the
// queue, and is told exactly how many: the gap in the sequence numbers
// equals the Count of the EventEventsDropped right after it, and nothing
// after the gap is missing.
func TestEventsOverflow(t *testing.T) {
	rep := &blockingReporter{release: make(chan struct{})}
	c := testcluster.New(t, 1, testcluster.Options{Configure: func(cfg *engine.Config) { cfg.Reporter = rep }})
	e := c.Node(1).Engine
	const n = 5000
	for i := range n {
		e.Report(engine.Event{Type: engine.EventProposalDropped, Count: uint64(i), Reason: "test"})
	}
	close(rep.release)
	// Once the drop is reported, the queue has room again.
	deadline := time.Now().Add(10 * time.Second)
	for len(only(rep.all(), engine.EventEventsDropped)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no events-dropped reported; %d events", len(rep.all()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.Report(engine.Event{Type: engine.EventProposalDropped, Reason: "last"})
	var evs []engine.Event
	for {
		evs = rep.all()
		if len(evs) > 0 && evs[len(evs)-1].Reason == "last" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the last event never arrived; %d events", len(evs))
		}
		time.Sleep(5 * time.Millisecond)
	}
	var dropped, gaps uint64
	for i, ev := range evs {
		want := uint64(1)
		if i > 0 {
			want = evs[i-1].Seq + 1
		}
		if ev.Seq == want {
			if ev.Type == engine.EventEventsDropped {
				t.Fatalf("event #%d: events-dropped of %d without a gap before it", ev.Seq, ev.Count)
			}
			continue
		}
		if ev.Type != engine.EventEventsDropped || ev.Seq < want || ev.Seq-want != ev.Count {
			t.Fatalf("event #%d (%s, Count %d) follows #%d: a gap not explained by events-dropped", ev.Seq, ev.Type, ev.Count, want-1)
		}
		dropped += ev.Count
		gaps++
	}
	if gaps == 0 || dropped == 0 {
		t.Fatalf("no events dropped from %d reported to a blocked reporter", n)
	}
	// Every event reported after the queue overflowed and was not dropped
	// arrived: the ones numbered after the gap are all there, in order.
	last := evs[len(evs)-1]
	if got, want := uint64(len(evs))+dropped, last.Seq; got != want {
		t.Errorf("%d events delivered and %d dropped, but the last is #%d", len(evs), dropped, want)
	}
	t.Logf("%d events, %d dropped in %d gaps", len(evs), dropped, gaps)
	c.Check()
}

// TestEventsCommittedAppliedUnderLoad: concurrent proposals produce
// committed and applied events with increasing indexes up to the last
// entry, on every node, and no gap in the sequence.
func TestEventsCommittedAppliedUnderLoad(t *testing.T) {
	var logs eventLogs
	c := testcluster.New(t, 3, testcluster.Options{Configure: logs.configure})
	leader := c.WaitLeader(5 * time.Second)
	ctx := ctxT(t, 30*time.Second)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 25 {
				if _, err := c.ProposeRetry(ctx, memkv.Set(fmt.Sprintf("w%d-%d", w, i), "v")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	last := c.Node(leader).Engine.Status().Applied
	c.WaitApplied(last, 10*time.Second)
	for _, id := range c.Running() {
		evs := logs.of(id).wait(t, fmt.Sprintf("node %d reports applying %d", id, last), func(evs []engine.Event) bool {
			a := only(evs, engine.EventApplied)
			return len(a) > 0 && a[len(a)-1].Index >= last
		})
		checkNumbered(t, id, evs)
		checkIncreasing(t, id, evs, engine.EventCommitted, last)
		checkIncreasing(t, id, evs, engine.EventApplied, last)
	}
	c.Check()
}

// TestEventsOverGRPC: over the gRPC transport, a member that stops is
// reported unreachable on the streamed classes, and reachable when it is
// back; Status tells the same. Snapshots sent over Bulk are reported by
// both ends.
func TestEventsOverGRPC(t *testing.T) {
	c := newGRPCCluster(t, func(cfg *engine.Config) {
		cfg.Snapshot = engine.SnapshotConfig{Threshold: 50, CatchUpMargin: 10}
	})
	ctx := ctxT(t, 30*time.Second)
	for i := range 100 {
		if _, err := c.nodes[1].e.Propose(ctx, memkv.Set(fmt.Sprint(i), "v")); err != nil {
			t.Fatal(err)
		}
	}
	c.join(2)
	c.join(3)
	c.waitConverged(20 * time.Second)
	if !c.nodes[1].rec.wait(engine.EventSnapshotSent, 5*time.Second) || !c.nodes[2].rec.wait(engine.EventSnapshotReceived, 5*time.Second) {
		t.Fatal("snapshot sent to a new member not reported by both ends")
	}
	waitConn := func(up bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			h := c.nodes[1].e.Status().Connections[3]
			if h.Control.Up == up && h.Data.Up == up && !h.Control.Since.IsZero() && !h.Data.Since.IsZero() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("node 1's connections to 3: %+v, want up=%v", h, up)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitConn(true)
	if n := c.nodes[1].rec.count(engine.EventPeerUnreachable) + c.nodes[1].rec.count(engine.EventPeerReachable); n != 0 {
		t.Errorf("%d peer events while every member ran", n)
	}

	c.nodes[3].e.Stop()
	c.nodes[3].e = nil
	waitConn(false) // the leader heartbeats: its streams notice at once
	var peers []engine.Peer
	for id, addr := range c.nodes[1].e.Members() {
		peers = append(peers, engine.Peer{ID: id, Addr: addr})
	}
	c.start(3, peers)
	waitConn(true)
	var got []string
	c.nodes[1].rec.mu.Lock()
	for _, ev := range c.nodes[1].rec.events {
		if (ev.Type == engine.EventPeerUnreachable || ev.Type == engine.EventPeerReachable) && ev.Class != transport.Bulk {
			got = append(got, brief(ev))
		}
	}
	c.nodes[1].rec.mu.Unlock()
	slices.Sort(got)
	want := sorted([]string{
		"peer-unreachable 3 control", "peer-unreachable 3 data",
		"peer-reachable 3 control", "peer-reachable 3 data",
	})
	if !slices.Equal(got, want) {
		t.Errorf("node 1's peer events %v, want %v", got, want)
	}
}
