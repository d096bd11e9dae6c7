package engine

import (
	"sync"
	"time"

	"github.com/cairn-db/cairn/transport"
)

// EventType names what happened.
type EventType int

const (
	// EventLeaderChanged: this node learned of a new leader, or lost it
	// (Leader 0) (Leader, Term).
	EventLeaderChanged EventType = iota + 1
	// EventRoleChanged: this node's role changed (From, To, Term).
	EventRoleChanged
	// EventMembershipChanged: a configuration change was applied (Index,
	// Voters, Learners: the configuration after it).
	EventMembershipChanged
	// EventSnapshotCreated: a local snapshot was written (Index, Term, Bytes:
	// the state machine's data, Duration).
	EventSnapshotCreated
	// EventSnapshotInstalled: a snapshot from the leader was installed
	// (Index, Term, Bytes: the state machine's data, Duration).
	EventSnapshotInstalled
	// EventProposalDropped: proposals were refused by raft (Count, Reason).
	EventProposalDropped
	// EventEventsDropped: the reporter fell behind and Count events were
	// lost: exactly the Count sequence numbers before this event's.
	EventEventsDropped
	// EventTermChanged: this node's term changed (Term).
	EventTermChanged
	// EventCommitted: the commit index this node knows advanced (Index: the
	// new commit index, Term). One per Ready that advances it, not one per
	// entry.
	EventCommitted
	// EventApplied: the state machine applied a batch of committed entries
	// (Index: the last applied, Term). One per apply batch.
	EventApplied
	// EventSnapshotSent: a snapshot was sent to a peer (Peer, Index, Term,
	// Bytes, Duration). Bytes is what this transfer moved over the network:
	// the snapshot file with its framing, less what an interrupted earlier
	// transfer had delivered; Duration is the transfer's.
	EventSnapshotSent
	// EventSnapshotReceived: a snapshot was received from a peer and stored
	// (Peer, Index, Term, Bytes, Duration as for EventSnapshotSent). It is
	// installed next (EventSnapshotInstalled), unless raft finds it stale.
	EventSnapshotReceived
	// EventReadIndexTimedOut: ReadIndex rounds got no answer within an
	// election timeout (a leader change drops them, a follower's are lost
	// while it knows no leader) and their reads were retried in a new round
	// (Count: the reads retried).
	EventReadIndexTimedOut
	// EventFlushLagHigh: under MemFirst, the flush lag (last index −
	// durable index) went over Config.FlushLagThreshold (Lag, LagThreshold,
	// Index: the last index written).
	EventFlushLagHigh
	// EventFlushLagNormal: the flush lag came back to half
	// Config.FlushLagThreshold or less after an EventFlushLagHigh (Lag,
	// LagThreshold, Index: the durable index).
	EventFlushLagNormal
	// EventSlowFsync: a synced write of the log took longer than
	// Config.SlowFsyncThreshold (Duration, SlowThreshold, Index: the last
	// index it made durable).
	EventSlowFsync
	// EventPeerUnreachable: the transport reported the connection of one
	// class to a peer down (Peer, Class).
	EventPeerUnreachable
	// EventPeerReachable: the transport reported a connection reported down
	// before up again (Peer, Class).
	EventPeerReachable
	// EventWatcherFellBehind: a watcher's reader did not keep up: its buffer
	// could not take what it was due, so it was moved off the live path and
	// catches up from history (Watcher, Key, RangeEnd). Emitted by the DB
	// (package cairn) through Engine.Report.
	EventWatcherFellBehind
	// EventWatcherCompacted: a watcher was canceled because revisions it
	// needed were compacted (Watcher, CompactRevision). Emitted by the DB
	// through Engine.Report.
	EventWatcherCompacted
)

var eventNames = map[EventType]string{
	EventLeaderChanged:     "leader-changed",
	EventRoleChanged:       "role-changed",
	EventMembershipChanged: "membership-changed",
	EventSnapshotCreated:   "snapshot-created",
	EventSnapshotInstalled: "snapshot-installed",
	EventProposalDropped:   "proposal-dropped",
	EventEventsDropped:     "events-dropped",
	EventTermChanged:       "term-changed",
	EventCommitted:         "committed",
	EventApplied:           "applied",
	EventSnapshotSent:      "snapshot-sent",
	EventSnapshotReceived:  "snapshot-received",
	EventReadIndexTimedOut: "read-index-timed-out",
	EventFlushLagHigh:      "flush-lag-high",
	EventFlushLagNormal:    "flush-lag-normal",
	EventSlowFsync:         "slow-fsync",
	EventPeerUnreachable:   "peer-unreachable",
	EventPeerReachable:     "peer-reachable",
	EventWatcherFellBehind: "watcher-fell-behind",
	EventWatcherCompacted:  "watcher-compacted",
}

func (t EventType) String() string {
	if n, ok := eventNames[t]; ok {
		return n
	}
	return "unknown"
}

// Event is one thing that happened on a node. Fields not meaningful for the
// event's Type (see each EventType) are zero. A Reporter owns the events it
// is given, slices included.
type Event struct {
	// Seq numbers the node's events from 1, in the order they happened
	// (Time does not decrease along it). A gap a reporter sees is always
	// explained by the EventEventsDropped right after it, whose Count is the
	// gap's length.
	Seq  uint64
	Time time.Time
	Type EventType
	Node uint64

	Term     uint64
	Leader   uint64
	From, To Role
	Index    uint64
	Voters   []uint64
	Learners []uint64
	Bytes    int64
	Duration time.Duration
	Count    uint64
	Reason   string

	// Peer is the other node: of a snapshot transfer, or of a connection.
	Peer uint64
	// Class is the connection class of EventPeerUnreachable and
	// EventPeerReachable.
	Class transport.Class
	// Lag and LagThreshold are the flush lag and its threshold, in entries.
	Lag, LagThreshold uint64
	// SlowThreshold is Config.SlowFsyncThreshold.
	SlowThreshold time.Duration
	// Watcher is a watcher's id; Key and RangeEnd are what it watches:
	// Key alone (RangeEnd nil), [Key, RangeEnd), or every key from Key on
	// (RangeEnd "\x00", etcd's convention).
	Watcher       int64
	Key, RangeEnd []byte
	// CompactRevision is the revision the store was compacted at.
	CompactRevision int64
}

// Reporter receives a node's events, in order, from one goroutine. A slow
// Reporter never slows the node: events beyond a bounded queue are counted
// and reported as one EventEventsDropped.
type Reporter interface {
	Report(Event)
}

// eventQueueSize bounds the events waiting for a slow reporter.
const eventQueueSize = 1024

// events numbers a node's events and hands them to the reporter's
// goroutine. Any goroutine may emit; the queue's lock is held only to
// number and append an event, never while the reporter runs.
//
// Emit sites check enabled first, so that with no reporter no Event is
// built: `if e.ev.enabled() { e.ev.emit(Event{...}) }`.
type events struct {
	node     uint64
	reporter Reporter
	wake     chan struct{} // capacity 1: the queue has something
	stopc    chan struct{}
	wg       sync.WaitGroup

	mu struct {
		sync.Mutex
		seq     uint64  // the last sequence number given
		queue   []Event // numbered, waiting for the reporter; at most eventQueueSize
		dropped uint64  // numbered but not queued since the last EventEventsDropped
		stopped bool    // emit does nothing once the reporter goroutine is gone
	}
}

func newEvents(node uint64, r Reporter) *events {
	ev := &events{node: node, reporter: r}
	if r != nil {
		ev.wake = make(chan struct{}, 1)
		ev.stopc = make(chan struct{})
		ev.wg.Add(1)
		go ev.run()
	}
	return ev
}

// enabled reports whether events are wanted at all.
func (ev *events) enabled() bool { return ev.reporter != nil }

// emit numbers e and queues it for the reporter. It never blocks on the
// reporter: when the queue is full, e is counted as dropped, and the count
// is reported as soon as the reporter has taken what is queued.
func (ev *events) emit(e Event) {
	if ev.reporter == nil {
		return
	}
	e.Node = ev.node
	ev.mu.Lock()
	if ev.mu.stopped {
		ev.mu.Unlock()
		return
	}
	ev.mu.seq++
	e.Seq = ev.mu.seq
	e.Time = time.Now() // under the lock: Time follows Seq
	if len(ev.mu.queue) >= eventQueueSize {
		ev.mu.dropped++
		ev.mu.Unlock()
		return
	}
	ev.mu.queue = append(ev.mu.queue, e)
	ev.mu.Unlock()
	select {
	case ev.wake <- struct{}{}:
	default: // already woken
	}
}

// take returns what is queued, followed by an EventEventsDropped if events
// were dropped since the last one, and leaves spare as the new queue. The
// dropped events' numbers all come after the queued ones' (only a full
// queue drops), so the EventEventsDropped, numbered now, comes right after
// the gap.
func (ev *events) take(spare []Event) []Event {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	q := ev.mu.queue
	ev.mu.queue = spare[:0]
	if n := ev.mu.dropped; n > 0 {
		ev.mu.dropped = 0
		ev.mu.seq++
		q = append(q, Event{Seq: ev.mu.seq, Time: time.Now(), Type: EventEventsDropped, Node: ev.node, Count: n})
	}
	return q
}

// run is the reporter's goroutine: it hands the queue over in batches.
func (ev *events) run() {
	defer ev.wg.Done()
	var batch []Event
	deliver := func() {
		batch = ev.take(batch) // the delivered batch becomes the next queue
		for i := range batch {
			ev.reporter.Report(batch[i])
		}
		clear(batch) // the reporter owns the events' slices now
	}
	for {
		select {
		case <-ev.wake:
			deliver()
		case <-ev.stopc:
			deliver() // nothing is queued after stopped is set
			return
		}
	}
}

// stop delivers what is queued and stops the reporter's goroutine; later
// events are discarded.
func (ev *events) stop() {
	if ev.reporter == nil {
		return
	}
	ev.mu.Lock()
	ev.mu.stopped = true
	ev.mu.Unlock()
	close(ev.stopc)
	ev.wg.Wait()
}

// Report emits e into this node's event sequence, for the layers built on
// the engine (the DB reports its watchers' events through it): e is
// numbered and timed with the engine's own events and reaches the same
// Reporter, with Node set. It never blocks. With no Reporter configured,
// or after Stop, it does nothing; check Reporting before building an
// expensive event.
func (e *Engine) Report(ev Event) { e.ev.emit(ev) }

// Reporting reports whether a Reporter receives this node's events.
func (e *Engine) Reporting() bool { return e.ev.enabled() }
