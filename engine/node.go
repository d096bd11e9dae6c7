package engine

import (
	"errors"
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// runRaft is the raft loop: the only goroutine that touches the RawNode.
// It ticks, steps what arrives, and hands each Ready out: local storage
// work to the log writer and the apply loop, everything else to the
// transport. With AsyncStorageWrites nothing here waits for a disk.
func (e *Engine) runRaft() {
	defer e.wg.Done()
	ticker := time.NewTicker(e.cfg.Raft.Tick())
	defer ticker.Stop()
	var (
		inbox  []inboxItem
		soft   = raft.SoftState{}
		outbox []*raftpb.Message
		term   = e.store.HardState().GetTerm() // the last term reported
	)
	rn := e.rn
	for {
		select {
		case <-ticker.C:
			e.tick(rn, soft.Lead)
		case ps := <-e.propc:
			e.propose(rn, ps)
		case <-e.inbox.notify:
			inbox = e.inbox.drain(inbox)
			for i := range inbox {
				e.step(rn, &inbox[i])
			}
			clear(inbox)
		case f := <-e.reqc:
			f(rn)
		case r := <-e.readc:
			e.startRead(rn, r)
		case <-e.reads.timer.C:
			e.readTimer(rn)
		case <-e.stopc:
			return
		}
		if !rn.HasReady() {
			continue
		}
		rd := rn.Ready()
		if hs := rd.HardState; hs != nil && hs.GetTerm() != term {
			term = hs.GetTerm()
			if e.ev.enabled() {
				e.ev.emit(Event{Type: EventTermChanged, Term: term})
			}
		}
		if rd.SoftState != nil && *rd.SoftState != soft {
			e.softStateChanged(soft, *rd.SoftState, rn.BasicStatus().GetTerm())
			soft = *rd.SoftState
		}
		if hs := rd.HardState; hs != nil && hs.GetCommit() > 0 {
			// Before the entries go to the apply loop: EventCommitted
			// precedes the EventApplied of the same entries.
			if prev := e.commit.Swap(hs.GetCommit()); hs.GetCommit() > prev && e.ev.enabled() {
				e.ev.emit(Event{Type: EventCommitted, Index: hs.GetCommit(), Term: hs.GetTerm()})
			}
		}
		for _, rs := range rd.ReadStates {
			if string(rs.RequestCtx) == readyCtx {
				e.markReadyAt(rs.Index)
			} else {
				e.readDone(rn, rs.RequestCtx, rs.Index)
			}
		}
		for _, m := range rd.Messages {
			switch m.GetTo() {
			case raft.LocalAppendThread:
				if ents := m.GetEntries(); len(ents) > 0 {
					e.raftLast = ents[len(ents)-1].GetIndex()
				} else if snap := m.GetSnapshot(); snap != nil && len(ents) == 0 && snap.GetMetadata().GetIndex() > 0 {
					e.raftLast = snap.GetMetadata().GetIndex()
				}
				e.appendq.push(m)
			case raft.LocalApplyThread:
				e.applyq.push(applyTask{msg: m})
			default:
				if m.GetType() == raftpb.MsgTimeoutNow {
					e.leaseTransfer(m) // before the target can campaign
				}
				outbox = append(outbox, m)
			}
		}
		if len(outbox) > 0 {
			e.tr.Send(outbox)
			outbox = nil // the transport owns the slice now
		}
	}
}

// step feeds one inbox item to raft. Errors are expected and harmless: a
// message from a removed peer, a stale response after a term change.
func (e *Engine) step(rn *raft.RawNode, it *inboxItem) {
	switch {
	case it.msg != nil:
		m := it.msg
		switch m.GetType() {
		case raftpb.MsgHeartbeat:
			e.checkLostTail(rn, m)
		case raftpb.MsgVote, raftpb.MsgPreVote:
			if e.holdVote(m) {
				return // restarted within an election timeout: see lease_read.go
			}
			if e.recovering {
				e.recoveringVote(rn, m)
				return // abstain: see Engine.recovering
			}
		case raftpb.MsgAppResp:
			if !m.GetReject() && e.raftLast > 0 && m.GetIndex() > e.raftLast {
				e.lostCommitted(m)
				return
			}
		case raftpb.MsgApp:
			// A deposed leader's late append (raft ignores it) may hold
			// entries that never committed.
			if m.GetTerm() >= rn.BasicStatus().GetTerm() && e.diverged(m) {
				return
			}
		}
		if e.silentTicks > 0 && m.GetFrom() == e.silentLeader {
			return
		}
		if t := m.GetType(); e.recovering && (t == raftpb.MsgApp || t == raftpb.MsgHeartbeat) && m.GetTerm() >= rn.BasicStatus().GetTerm() {
			e.recovering = false // a leader is there to repair this node's log
			e.log.Info("heard from leader after a crash; taking part in elections again", "leader", m.GetFrom())
		}
		if err := rn.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
			e.log.Debug("step", "type", m.GetType().String(), "from", m.GetFrom(), "err", err)
		}
	case it.unreachable != 0:
		rn.ReportUnreachable(it.unreachable)
	case it.snapshotTo != 0:
		status := raft.SnapshotFinish
		if !it.snapshotOK {
			status = raft.SnapshotFailure
		}
		rn.ReportSnapshot(it.snapshotTo, status)
	}
}

// recoveringVote lets a crashed MemFirst node that holds more of the log
// than a candidate campaign itself instead: after a crash of every node, the
// most complete log should lead, not the first to time out.
func (e *Engine) recoveringVote(rn *raft.RawNode, m *raftpb.Message) {
	last := must(e.store.LastIndex())
	lastTerm, err := e.store.Term(last)
	if err != nil {
		return
	}
	if m.GetLogTerm() < lastTerm || m.GetLogTerm() == lastTerm && m.GetIndex() < last {
		e.recovering = false
		e.log.Warn("a candidate with a shorter log campaigns after a crash; campaigning instead (MemFirst)",
			"candidate", m.GetFrom(), "candidate_last", m.GetIndex(), "last_index", last)
		rn.Campaign()
	}
}

// lostCommitted handles a follower's claim that entries beyond this leader's
// log are committed: raft would panic. It happens only when committed
// entries were lost, under MemFirst after a crash of a majority: the
// follower kept entries the new leader and its voters no longer have. The
// follower's state cannot be reconciled by raft; it is reported, loudly.
func (e *Engine) lostCommitted(m *raftpb.Message) {
	if e.lostCommitTicks > 0 {
		return
	}
	e.lostCommitTicks = 10 * e.cfg.Raft.ElectionTick
	e.log.Error("a follower holds committed entries this leader's log lacks: they were lost in a crash of a majority (MemFirst); rebuild that follower (remove it, wipe its data dir, add it again)",
		"follower", m.GetFrom(), "follower_committed", m.GetIndex(), "leader_last_index", e.raftLast)
}

// diverged checks a leader's entries against this node's committed ones:
// raft assumes they agree and does not look. They differ only if committed
// entries were lost (a crash of a majority under MemFirst, or a disk that
// lost synced writes); this node then applied a history the cluster no
// longer has, and must stop rather than serve it.
func (e *Engine) diverged(m *raftpb.Message) bool {
	commit := e.commit.Load()
	ents := m.GetEntries()
	if len(ents) == 0 || ents[0].GetIndex() > commit {
		return false
	}
	// Only the stored log up to the stored commit index is known to hold
	// the committed entries: raft may commit entries of its unstable log
	// that still replace older ones on disk (AsyncStorageWrites).
	commit = min(commit, e.store.HardState().GetCommit())
	for _, ent := range ents {
		if ent.GetIndex() > commit {
			break
		}
		t, err := e.store.Term(ent.GetIndex())
		if err != nil || t == ent.GetTerm() {
			continue
		}
		e.fail(fmt.Errorf("%w: entry %d, committed here with term %d, is term %d in leader %d's log; committed entries were lost by a crash of a majority (MemFirst) or a disk; rebuild this node (remove it, wipe %s, add it again)",
			ErrDiverged, ent.GetIndex(), t, ent.GetTerm(), m.GetFrom(), e.cfg.DataDir))
		return true
	}
	return false
}

// recoverTimeout is how many election timeouts a MemFirst node that crashed
// abstains from elections while no leader shows up. If every node crashed,
// none may hear from a leader, and after this long they elect one among
// themselves (losing what no survivor flushed, as MemFirst allows).
const recoverTimeout = 5

// tick advances raft's clock and the raft loop's own timers.
func (e *Engine) tick(rn *raft.RawNode, lead uint64) {
	if e.lostTailTicks > 0 {
		e.lostTailTicks--
	}
	if e.silentTicks > 0 {
		e.silentTicks--
	}
	if e.lostCommitTicks > 0 {
		e.lostCommitTicks--
	}
	if e.recovering {
		if e.soleVoter() {
			e.recovering = false // nobody else can hold what it lost
		} else if e.recoverTicks++; e.recoverTicks > recoverTimeout*e.cfg.Raft.ElectionTick {
			e.recovering = false
			e.log.Warn("no leader after a crash; taking part in elections again; writes no survivor flushed may be lost (MemFirst)")
		} else {
			return // no election timeout, so no campaign
		}
	}
	rn.Tick()
	e.tickReads(rn)
	// A cluster of one need not wait an election timeout to elect itself
	// (raft refuses until its configuration is applied).
	if lead == raft.None && e.soleVoter() {
		rn.Campaign()
	}
	// Ready waits for the leader's commit index, learned with a read index
	// (a follower's own commit index may be far behind); ask again every
	// heartbeat until it is known.
	if lead != raft.None && !e.isReady() {
		if e.readyAskTicks--; e.readyAskTicks <= 0 {
			e.readyAskTicks = e.cfg.Raft.HeartbeatTick
			rn.ReadIndex([]byte(readyCtx))
		}
	}
}

// readyCtx marks the read index request that Ready waits for.
const readyCtx = "cairn-ready"

func (e *Engine) soleVoter() bool {
	cs := e.members.confState()
	return len(cs.GetVoters()) == 1 && cs.GetVoters()[0] == e.id && len(cs.GetVotersOutgoing()) == 0
}

// checkLostTail handles a heartbeat whose commit index lies beyond the end
// of the local log. A leader only sends a commit index this node has
// acknowledged, so the node lost acknowledged entries: under MemFirst, by
// crashing before a flush; under DiskFirst only if the disk lied. The raft
// library treats this as impossible (it panics), and its leader never
// replicates below what a follower acknowledged, so the node:
//
//   - under DiskFirst, stops with ErrLogLost: its disk cannot be trusted;
//   - under MemFirst, clamps the commit index to its log and asks the leader
//     to hand leadership to another voter. A new leader starts every
//     follower's progress afresh and repairs this node's log.
func (e *Engine) checkLostTail(rn *raft.RawNode, m *raftpb.Message) {
	last, said := must(e.store.LastIndex()), m.GetCommit()
	if said <= last {
		return
	}
	m.Commit = new(last)
	if m.GetTerm() < rn.BasicStatus().GetTerm() {
		return // a deposed leader's late heartbeat; raft ignores it
	}
	if e.cfg.Persistence.Strategy == DiskFirst {
		e.fail(fmt.Errorf("%w: leader %d says entries up to %d are stored here, but the log in %s ends at %d",
			ErrLogLost, m.GetFrom(), said, e.cfg.DataDir, last))
		return
	}
	if e.lostTailTicks > 0 {
		return // asked recently
	}
	e.lostTailTicks = 2 * e.cfg.Raft.ElectionTick
	var others []uint64
	for _, id := range e.members.confState().GetVoters() {
		if id != e.id && id != m.GetFrom() {
			others = append(others, id)
		}
	}
	if len(others) == 0 {
		// Two voters: nobody to hand leadership to. Ignoring the leader for a
		// while makes it step down (CheckQuorum); whoever leads next starts
		// every follower afresh.
		e.silentTicks, e.silentLeader = 2*e.cfg.Raft.ElectionTick, m.GetFrom()
		e.log.Warn("log lost unflushed acknowledged entries in a crash (MemFirst); ignoring the leader so that a new term repairs it",
			"leader", m.GetFrom(), "leader_says_stored", said, "last_index", last)
		return
	}
	// Rotate, so that one unreachable voter does not stall the repair.
	id := others[e.repairTurn%len(others)]
	e.repairTurn++
	e.log.Warn("log lost unflushed acknowledged entries in a crash (MemFirst); asking for a new leader to repair it",
		"leader", m.GetFrom(), "leader_says_stored", said, "last_index", last, "new_leader", id)
	rn.TransferLeader(id)
}

// propose hands a batch of proposals to raft as one MsgProp.
func (e *Engine) propose(rn *raft.RawNode, ps []*proposal) {
	// Take whatever else is already waiting, so a burst becomes one append.
	for more := true; more && len(ps) < 4096; {
		select {
		case next := <-e.propc:
			ps = append(ps, next...)
		default:
			more = false
		}
	}
	ents := make([]*raftpb.Entry, len(ps))
	for i, p := range ps {
		ents[i] = &raftpb.Entry{Data: p.data}
	}
	err := rn.Step(&raftpb.Message{Type: raftpb.MsgProp.Enum(), From: new(e.id), Entries: ents})
	if err != nil {
		for _, p := range ps {
			e.waiters.resolve(p.seq, result{err: ErrProposalDropped})
		}
		if e.ev.enabled() {
			e.ev.emit(Event{Type: EventProposalDropped, Count: uint64(len(ps)), Reason: err.Error()})
		}
	}
}

func (e *Engine) softStateChanged(prev, cur raft.SoftState, term uint64) {
	e.dropLease()
	if prev.RaftState != cur.RaftState {
		if e.ev.enabled() {
			e.ev.emit(Event{Type: EventRoleChanged, From: roleOf(prev.RaftState), To: roleOf(cur.RaftState), Term: term})
		}
		e.log.Debug("role changed", "from", roleOf(prev.RaftState), "to", roleOf(cur.RaftState), "term", term)
	}
	if prev.Lead != cur.Lead {
		if e.ev.enabled() {
			e.ev.emit(Event{Type: EventLeaderChanged, Leader: cur.Lead, Term: term})
		}
		if cur.Lead != raft.None {
			e.log.Info("leader elected", "leader", cur.Lead, "term", term)
		}
	}
	e.leader.set(cur.Lead, term)
}

// withRaft runs f on the raft loop and waits for it.
func (e *Engine) withRaft(f func(rn *raft.RawNode)) error {
	done := make(chan struct{})
	select {
	case e.reqc <- func(rn *raft.RawNode) { f(rn); close(done) }:
	case <-e.stopc:
		return ErrStopped
	}
	<-done // f runs on the raft loop once accepted; it always completes
	return nil
}
