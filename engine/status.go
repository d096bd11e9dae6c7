package engine

import (
	"slices"
	"sync"
	"time"

	"go.etcd.io/raft/v3"

	"github.com/cairn-db/cairn/transport"
)

// Status is a plain snapshot of a node's state.
type Status struct {
	ID     uint64
	Role   Role
	Term   uint64
	Leader uint64
	// Commit is the highest index known committed; Applied the highest
	// applied to the state machine; Durable the highest on stable storage
	// here; LastIndex the highest in the local log. LastIndex − Durable is
	// the flush lag (always 0 under DiskFirst once a write returns).
	Commit, Applied, Durable, LastIndex uint64
	// FirstIndex is the oldest entry still in the log; SnapshotIndex the
	// latest snapshot's.
	FirstIndex, SnapshotIndex uint64
	Voters, Learners          []uint64
	// Joint is true while the cluster is between two configurations.
	Joint bool
	// Members maps every member to its peer address.
	Members map[uint64]string
	// Progress is the leader's view of each follower (empty elsewhere).
	Progress map[uint64]PeerProgress
	// Reads counts reads by policy and ReadIndex rounds (ReadStats).
	Reads ReadStats
	// Connections is the health of this node's connections to every other
	// member (of Members), per class, as the transport reported it.
	Connections map[uint64]PeerConnections
}

// PeerConnections is the health of the connections to one peer, one per
// class.
type PeerConnections struct {
	Control, Data, Bulk ConnHealth
}

// Class returns the health of class c.
func (p PeerConnections) Class(c transport.Class) ConnHealth {
	switch c {
	case transport.Control:
		return p.Control
	case transport.Data:
		return p.Data
	default:
		return p.Bulk
	}
}

func (p *PeerConnections) class(c transport.Class) *ConnHealth {
	switch c {
	case transport.Control:
		return &p.Control
	case transport.Data:
		return &p.Data
	default:
		return &p.Bulk
	}
}

// ConnHealth is the state of one connection class to one peer, from the
// transport's reports (transport.Handler.PeerState).
type ConnHealth struct {
	// Up is the state last reported; true before any report.
	Up bool
	// Since is when the transport reported that state; zero before any
	// report.
	Since time.Time
}

// PeerProgress is the leader's view of one follower's log.
type PeerProgress struct {
	Match, Next  uint64
	State        string
	RecentActive bool
	Learner      bool
}

// FlushLag is LastIndex − Durable.
func (s Status) FlushLag() uint64 {
	if s.LastIndex > s.Durable {
		return s.LastIndex - s.Durable
	}
	return 0
}

// Status returns the node's current state. After Stop it returns what is
// known without the raft loop.
func (e *Engine) Status() Status {
	st := Status{ID: e.id}
	var rs raft.Status
	if err := e.withRaft(func(rn *raft.RawNode) { rs = rn.Status() }); err == nil {
		st.Role = roleOf(rs.RaftState)
		st.Term = rs.GetTerm()
		st.Leader = rs.Lead
		if rs.Progress != nil {
			st.Progress = make(map[uint64]PeerProgress, len(rs.Progress))
			for id, pr := range rs.Progress {
				if id == e.id {
					continue
				}
				st.Progress[id] = PeerProgress{Match: pr.Match, Next: pr.Next, State: pr.State.String(), RecentActive: pr.RecentActive, Learner: pr.IsLearner}
			}
		}
	}
	ls := e.store.Status()
	st.Commit = max(e.commit.Load(), ls.Commit)
	st.Applied = e.applied.Load()
	st.Durable = min(e.durable.Load(), ls.LastIndex)
	st.LastIndex = ls.LastIndex
	st.FirstIndex = ls.FirstIndex
	st.SnapshotIndex = ls.SnapshotIndex
	cs := e.members.confState()
	st.Voters = slices.Clone(cs.GetVoters())
	st.Learners = slices.Clone(cs.GetLearners())
	st.Joint = len(cs.GetVotersOutgoing()) > 0
	st.Members = e.Members()
	st.Reads = e.ReadStats()
	st.Connections = e.conns.status(e.id, st.Members)
	return st
}

// connStates keeps what the transport reported of each peer's connections.
// The transport's goroutines write it; Status reads it.
type connStates struct {
	mu sync.Mutex
	m  map[uint64]*PeerConnections // peers with at least one report
}

// report records that the connection of class c to peer id went up or
// down, and emits the event it is worth, under the lock so that events
// follow the order of the reports: EventPeerUnreachable when a connection
// up (or never reported) goes down, EventPeerReachable when one reported
// down comes back; none for a repeated state, or for a first report of a
// connection up.
func (cs *connStates) report(ev *events, id uint64, c transport.Class, up bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if t := cs.reportLocked(id, c, up, time.Now()); t != 0 && ev.enabled() {
		ev.emit(Event{Type: t, Peer: id, Class: c})
	}
}

func (cs *connStates) reportLocked(id uint64, c transport.Class, up bool, now time.Time) EventType {
	if cs.m == nil {
		cs.m = map[uint64]*PeerConnections{}
	}
	p := cs.m[id]
	if p == nil {
		p = &PeerConnections{Control: ConnHealth{Up: true}, Data: ConnHealth{Up: true}, Bulk: ConnHealth{Up: true}}
		cs.m[id] = p
	}
	h := p.class(c)
	known := !h.Since.IsZero()
	if known && h.Up == up {
		return 0
	}
	wasUp := h.Up
	*h = ConnHealth{Up: up, Since: now}
	switch {
	case !up && wasUp:
		return EventPeerUnreachable
	case up && !wasUp:
		return EventPeerReachable
	}
	return 0
}

// forget drops what was reported of a peer that left the transport.
func (cs *connStates) forget(id uint64) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.m, id)
}

// status returns the health of every member's connections but self's.
func (cs *connStates) status(self uint64, members map[uint64]string) map[uint64]PeerConnections {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make(map[uint64]PeerConnections, len(members))
	for id := range members {
		if id == self {
			continue
		}
		if p := cs.m[id]; p != nil {
			out[id] = *p
		} else {
			out[id] = PeerConnections{Control: ConnHealth{Up: true}, Data: ConnHealth{Up: true}, Bulk: ConnHealth{Up: true}}
		}
	}
	return out
}
