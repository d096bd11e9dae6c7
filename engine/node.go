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
		case <-e.stopc:
			return
		}
		if !rn.HasReady() {
			continue
		}
		rd := rn.Ready()
		if rd.SoftState != nil && *rd.SoftState != soft {
			e.softStateChanged(soft, *rd.SoftState, rn.BasicStatus().GetTerm())
			soft = *rd.SoftState
		}
		if hs := rd.HardState; hs != nil && hs.GetCommit() > 0 {
			e.commit.Store(hs.GetCommit())
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
				e.appendq.push(m)
			case raft.LocalApplyThread:
				e.applyq.push(applyTask{msg: m})
			default:
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
			if e.recovering {
				return // abstain: see Engine.recovering
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
		e.ev.emit(Event{Type: EventProposalDropped, Count: uint64(len(ps)), Reason: err.Error()})
	}
}

func (e *Engine) softStateChanged(prev, cur raft.SoftState, term uint64) {
	if prev.RaftState != cur.RaftState {
		e.ev.emit(Event{Type: EventRoleChanged, From: roleOf(prev.RaftState), To: roleOf(cur.RaftState), Term: term})
		e.log.Debug("role changed", "from", roleOf(prev.RaftState), "to", roleOf(cur.RaftState), "term", term)
	}
	if prev.Lead != cur.Lead {
		e.ev.emit(Event{Type: EventLeaderChanged, Leader: cur.Lead, Term: term})
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
