package engine

import (
	"slices"

	"go.etcd.io/raft/v3"
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
	return st
}
