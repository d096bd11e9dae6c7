package engine

import (
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// A leader's read lease (see LeaseRead for the guarantee and its clock
// assumption). The leader takes it when a ReadIndex round it started at t,
// as leader of term T, is confirmed by a quorum while it still leads T: the
// voters of that quorum heard from it after t and, with CheckQuorum, ignore
// other candidates for ElectionTick ticks (at least (ElectionTick − 1) ×
// TickMs) after that. So no other leader exists before t +
// LeaseDurationMs, and the leader's commit index is then the latest: it
// has committed an entry of T (raft answers no ReadIndex before that).
//
// Three ways around CheckQuorum are closed here:
//
//   - A leadership transfer (MsgTimeoutNow) makes its target campaign at
//     once, and voters grant that vote regardless. Sending one drops the
//     lease, and no lease is taken again in that term: a late MsgTimeoutNow
//     may still arrive after the transfer was abandoned.
//   - A voter that restarts forgot when it last heard from the leader. It
//     takes no part in elections (ignores vote requests) for an election
//     timeout after it starts, as if it had just heard from a leader.
//   - Membership changes drop the lease, so that it is always backed by a
//     quorum of the current configuration.
//
// A lease is also dropped whenever this node's role or leader changes.

// leaseState is the lease and the rules that guard it. until and lastAsk
// are read and written by any goroutine; the rest belongs to the raft loop.
type leaseState struct {
	epoch time.Time     // monotonic origin of until and lastAsk; set before the raft loop runs
	dur   time.Duration // LeaseDurationMs; 0: no leases
	until atomic.Int64  // end of the lease, in ns since epoch; 0: none
	// lastAsk is when a lease reader last asked the raft loop to renew the
	// lease, in ns since epoch.
	lastAsk atomic.Int64

	noLeaseTerm    uint64    // a leadership transfer was attempted in this term
	notBefore      time.Time // rounds started before this take no lease
	holdVotesUntil time.Time // a restarted node ignores vote requests until then
}

// renewLeaseReq is what lease readers send on readc to ask for a renewal.
var renewLeaseReq = &readReq{}

// initLease runs in Start, before the raft loop.
func (e *Engine) initLease() {
	l := &e.lease
	l.epoch = time.Now()
	if e.cfg.Raft.DisableCheckQuorum {
		return // voters refuse no candidate: no leases anywhere
	}
	l.dur = time.Duration(e.cfg.ReadConsistency.LeaseDurationMs) * time.Millisecond
	// A node that was a member before (it has a term) may have helped
	// confirm a lease just before it stopped.
	if e.store.HardState().GetTerm() > 0 {
		l.holdVotesUntil = l.epoch.Add(time.Duration(e.cfg.Raft.ElectionTick) * e.cfg.Raft.Tick())
	}
}

func (l *leaseState) now() int64 { return int64(time.Since(l.epoch)) }

func (l *leaseState) remaining() time.Duration {
	if u := l.until.Load(); u != 0 {
		return max(0, time.Duration(u-l.now()))
	}
	return 0
}

// leaseIndex returns the commit index a lease read may be served at, if
// this node holds a valid lease. Any goroutine may call it. Past half its
// lease, it asks the raft loop to renew it.
func (e *Engine) leaseIndex() (uint64, bool) {
	l := &e.lease
	until := l.until.Load()
	if until == 0 {
		return 0, false
	}
	now := l.now()
	if now >= until {
		return 0, false
	}
	if time.Duration(until-now) < l.dur/2 {
		if last := l.lastAsk.Load(); time.Duration(now-last) >= l.dur/4 && l.lastAsk.CompareAndSwap(last, now) {
			select {
			case e.readc <- renewLeaseReq:
			default: // the raft loop is busy with reads, whose rounds renew the lease
			}
		}
	}
	// A write acknowledged anywhere was committed by this leader first, and
	// it publishes its commit index before it sends or applies anything.
	return e.commit.Load(), true
}

// leaseConfirmed takes or extends the lease when a quorum confirmed a round
// this node started as leader. It runs on the raft loop.
func (e *Engine) leaseConfirmed(rn *raft.RawNode, r *readRound) {
	l := &e.lease
	if l.dur == 0 || r.term == l.noLeaseTerm || r.start.Before(l.notBefore) {
		return
	}
	if st := rn.BasicStatus(); st.RaftState != raft.StateLeader || st.GetTerm() != r.term {
		return
	}
	until := int64(r.start.Sub(l.epoch) + l.dur)
	if until > l.until.Load() {
		l.until.Store(until)
	}
}

// renewLease starts a round to renew a lease that lease reads use, unless a
// round that will renew it is in flight. It runs on the raft loop.
func (e *Engine) renewLease(rn *raft.RawNode) {
	l := &e.lease
	st := rn.BasicStatus()
	if l.dur == 0 || l.until.Load() == 0 || st.RaftState != raft.StateLeader || st.GetTerm() == l.noLeaseTerm {
		return
	}
	for _, r := range e.reads.rounds {
		if r.term == st.GetTerm() && !r.start.Before(l.notBefore) {
			return
		}
	}
	e.startRound(rn, roundRenew, nil)
}

// dropLease ends the lease at once, and keeps rounds already in flight from
// taking a new one. It runs on the raft loop: on a change of role or
// leader, and on a membership change.
func (e *Engine) dropLease() {
	e.lease.until.Store(0)
	e.lease.notBefore = time.Now()
}

// leaseTransfer is called on the raft loop before a MsgTimeoutNow is sent:
// its target will be elected without waiting for the voters' leases.
func (e *Engine) leaseTransfer(m *raftpb.Message) {
	e.dropLease()
	e.lease.noLeaseTerm = m.GetTerm()
}

// holdVote reports whether a vote request must be ignored because this node
// restarted less than an election timeout ago. A leadership transfer's vote
// goes through: its leader dropped its lease before asking for it.
func (e *Engine) holdVote(m *raftpb.Message) bool {
	l := &e.lease
	if l.holdVotesUntil.IsZero() {
		return false
	}
	if !time.Now().Before(l.holdVotesUntil) {
		l.holdVotesUntil = time.Time{}
		return false
	}
	return string(m.GetContext()) != "CampaignTransfer" // raft's campaignTransfer
}
