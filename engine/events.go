package engine

import (
	"sync"
	"sync/atomic"
	"time"
)

// EventType names what happened.
type EventType int

const (
	// EventLeaderChanged: this node learned of a new leader (Leader, Term).
	EventLeaderChanged EventType = iota + 1
	// EventRoleChanged: this node's role changed (From, To, Term).
	EventRoleChanged
	// EventMembershipChanged: a configuration change was applied (Index, Voters, Learners).
	EventMembershipChanged
	// EventSnapshotCreated: a local snapshot was written (Index, Bytes, Duration).
	EventSnapshotCreated
	// EventSnapshotInstalled: a snapshot from the leader was installed (Index, Bytes, Duration).
	EventSnapshotInstalled
	// EventProposalDropped: proposals were refused by raft (Count, Reason).
	EventProposalDropped
	// EventEventsDropped: the reporter fell behind and Count events were lost.
	EventEventsDropped
)

var eventNames = map[EventType]string{
	EventLeaderChanged:     "leader-changed",
	EventRoleChanged:       "role-changed",
	EventMembershipChanged: "membership-changed",
	EventSnapshotCreated:   "snapshot-created",
	EventSnapshotInstalled: "snapshot-installed",
	EventProposalDropped:   "proposal-dropped",
	EventEventsDropped:     "events-dropped",
}

func (t EventType) String() string {
	if n, ok := eventNames[t]; ok {
		return n
	}
	return "unknown"
}

// Event is one thing that happened on a node. Fields not meaningful for the
// event's Type are zero.
type Event struct {
	// Seq numbers the node's events from 1, without gaps: a gap a reporter
	// sees is always explained by an EventEventsDropped.
	Seq      uint64
	Time     time.Time
	Type     EventType
	Node     uint64
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
}

// Reporter receives a node's events, in order, from one goroutine. A slow
// Reporter never slows the node: events beyond a bounded queue are counted
// and reported as one EventEventsDropped.
type Reporter interface {
	Report(Event)
}

// eventQueueSize bounds the events waiting for a slow reporter.
const eventQueueSize = 1024

// events numbers events and hands them to the reporter's goroutine.
type events struct {
	node     uint64
	reporter Reporter
	seq      atomic.Uint64
	ch       chan Event
	dropped  atomic.Uint64
	stopc    chan struct{}
	wg       sync.WaitGroup
}

func newEvents(node uint64, r Reporter) *events {
	ev := &events{node: node, reporter: r}
	if r != nil {
		ev.ch = make(chan Event, eventQueueSize)
		ev.stopc = make(chan struct{})
		ev.wg.Add(1)
		go ev.run()
	}
	return ev
}

// emit never blocks. With no reporter it costs one nil check.
func (ev *events) emit(e Event) {
	if ev.reporter == nil {
		return
	}
	e.Node = ev.node
	e.Time = time.Now()
	select {
	case ev.ch <- e:
	default:
		ev.dropped.Add(1)
	}
}

func (ev *events) run() {
	defer ev.wg.Done()
	deliver := func(e Event) {
		if n := ev.dropped.Swap(0); n > 0 {
			ev.reporter.Report(Event{Seq: ev.seq.Add(1), Time: time.Now(), Type: EventEventsDropped, Node: ev.node, Count: n})
		}
		e.Seq = ev.seq.Add(1)
		ev.reporter.Report(e)
	}
	for {
		select {
		case e := <-ev.ch:
			deliver(e)
		case <-ev.stopc:
			for {
				select {
				case e := <-ev.ch:
					deliver(e)
				default:
					return
				}
			}
		}
	}
}

func (ev *events) stop() {
	if ev.reporter == nil {
		return
	}
	close(ev.stopc)
	ev.wg.Wait()
}
