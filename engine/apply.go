package engine

import (
	"fmt"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// applyTask is work for the apply loop: committed entries (a
// MsgStorageApply), a snapshot to restore, or, empty, a wake-up to
// reconsider taking a snapshot.
type applyTask struct {
	msg      *raftpb.Message
	restore  *raftpb.Snapshot
	restored chan<- error
}

// applyState is owned by the apply loop.
type applyState struct {
	index     uint64 // last entry applied (or covered by a snapshot)
	term      uint64
	smApplied uint64 // entries up to here are already in the state machine
	confState *raftpb.ConfState
	snapIndex uint64 // latest snapshot taken or installed
	confIndex uint64 // latest configuration change applied
	readyAt   atomic.Uint64
	snapping  atomic.Bool
}

// runApply applies committed entries in order, one batch per state machine
// call, and answers raft once each batch is applied.
func (e *Engine) runApply() {
	defer e.wg.Done()
	var tasks []applyTask
	reported := e.as.index // the last index EventApplied reported
	for {
		select {
		case <-e.applyq.notify:
		case <-e.stopc:
			return
		}
		tasks = e.applyq.drain(tasks)
		for _, t := range tasks {
			if e.stopping() {
				return
			}
			if t.restore != nil {
				t.restored <- e.installSnapshot(t.restore)
				continue
			}
			if t.msg == nil {
				continue // a wake-up: only maybeSnapshot below has work
			}
			if err := e.applyEntries(t.msg.GetEntries()); err != nil {
				e.fail(err)
				return
			}
			e.deliver(t.msg.GetResponses())
		}
		clear(tasks)
		if st := &e.as; st.index > reported {
			reported = st.index
			if e.ev.enabled() {
				e.ev.emit(Event{Type: EventApplied, Index: st.index, Term: st.term})
			}
		}
		e.maybeSnapshot()
	}
}

func (e *Engine) applyEntries(ents []*raftpb.Entry) error {
	st := &e.as
	var (
		batch  []Entry
		owners []uint64
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		results, err := e.sm.Apply(batch)
		if err != nil {
			return fmt.Errorf("engine: state machine failed applying entries %d-%d: %w", batch[0].Index, batch[len(batch)-1].Index, err)
		}
		if len(results) != len(batch) {
			return fmt.Errorf("engine: state machine returned %d results for %d entries", len(results), len(batch))
		}
		for i, seq := range owners {
			if seq != 0 {
				e.waiters.resolve(seq, result{value: results[i]})
			}
		}
		batch, owners = batch[:0], owners[:0]
		return nil
	}
	for _, ent := range ents {
		idx := ent.GetIndex()
		if idx <= st.index {
			continue // already applied before a restart or covered by a snapshot
		}
		switch ent.GetType() {
		case raftpb.EntryNormal:
			if len(ent.GetData()) == 0 || idx <= st.smApplied {
				break // a new leader's empty entry, or already in the state machine
			}
			node, seq, data, err := decodeProposal(ent.GetData())
			if err != nil {
				return fmt.Errorf("engine: entry %d: %w", idx, err)
			}
			batch = append(batch, Entry{Index: idx, Term: ent.GetTerm(), Data: data})
			if node != e.id {
				seq = 0
			}
			owners = append(owners, seq)
		case raftpb.EntryConfChange, raftpb.EntryConfChangeV2:
			if err := flush(); err != nil {
				return err
			}
			if err := e.applyConfChange(ent); err != nil {
				return err
			}
			st.confIndex = idx
		}
		st.index, st.term = idx, ent.GetTerm()
	}
	if err := flush(); err != nil {
		return err
	}
	e.applied.Store(st.index)
	e.appliedWait.notify(st.index)
	e.checkReady()
	return nil
}

// markReadyAt sets the index the node must apply before Ready closes.
func (e *Engine) markReadyAt(commit uint64) {
	if e.as.readyAt.CompareAndSwap(0, max(commit, 1)) {
		e.checkReady()
	}
}

func (e *Engine) isReady() bool {
	select {
	case <-e.readyc:
		return true
	default:
		return false
	}
}

func (e *Engine) checkReady() {
	at := e.as.readyAt.Load()
	if at != 0 && e.applied.Load() >= at {
		e.readyOnce.Do(func() { close(e.readyc) })
	}
}

// installSnapshot replaces the state machine's state with a snapshot
// received from the leader. It runs on the apply loop, ordered with the
// entries before it.
func (e *Engine) installSnapshot(snap *raftpb.Snapshot) error {
	start := time.Now()
	meta := snap.GetMetadata()
	f, err := e.store.OpenSnapshotFile(meta.GetTerm(), meta.GetIndex())
	if err != nil {
		return fmt.Errorf("engine: install snapshot: %w", err)
	}
	defer f.Close()
	if err := e.sm.Restore(f.Data(), meta.GetIndex()); err != nil {
		return fmt.Errorf("engine: state machine restore from snapshot %d: %w", meta.GetIndex(), err)
	}
	if err := e.restoreMembership(f.Context); err != nil {
		return err
	}
	if e.members.isRemoved(e.id) {
		return fmt.Errorf("%w (snapshot %d)", ErrRemoved, meta.GetIndex())
	}
	st := &e.as
	st.index, st.term, st.smApplied, st.snapIndex = meta.GetIndex(), meta.GetTerm(), meta.GetIndex(), meta.GetIndex()
	st.confState = proto.CloneOf(meta.GetConfState())
	e.members.setConf(st.confState)
	e.applied.Store(st.index)
	e.appliedWait.notify(st.index)
	if e.ev.enabled() {
		e.ev.emit(Event{Type: EventSnapshotInstalled, Index: meta.GetIndex(), Term: meta.GetTerm(), Bytes: f.DataSize(), Duration: time.Since(start)})
	}
	e.log.Info("snapshot installed", "index", meta.GetIndex(), "bytes", f.DataSize(), "took", time.Since(start))
	e.checkReady()
	return nil
}

// restoreStateMachine brings the state machine up to the latest snapshot
// when it is behind it, before raft starts.
func (e *Engine) restoreStateMachine() error {
	if su, ok := e.sm.(StorageUser); ok {
		if err := su.UseStorage(e.store.DB()); err != nil {
			return fmt.Errorf("engine: state machine storage: %w", err)
		}
	}
	smApplied, err := e.sm.AppliedIndex()
	if err != nil {
		return fmt.Errorf("engine: state machine applied index: %w", err)
	}
	st := &e.as
	st.confState = &raftpb.ConfState{}
	snap, _ := e.store.Snapshot()
	if meta := snap.GetMetadata(); meta.GetIndex() > 0 {
		f, err := e.store.OpenSnapshotFile(meta.GetTerm(), meta.GetIndex())
		if err != nil {
			return fmt.Errorf("engine: open latest snapshot: %w", err)
		}
		defer f.Close()
		if err := e.restoreMembership(f.Context); err != nil {
			return err
		}
		if e.members.isRemoved(e.id) {
			return fmt.Errorf("%w: %s holds a snapshot taken after node %d was removed", ErrRemoved, e.cfg.DataDir, e.id)
		}
		if smApplied < meta.GetIndex() {
			if err := e.sm.Restore(f.Data(), meta.GetIndex()); err != nil {
				return fmt.Errorf("engine: state machine restore from snapshot %d: %w", meta.GetIndex(), err)
			}
			smApplied = meta.GetIndex()
		}
		st.index, st.term, st.snapIndex = meta.GetIndex(), meta.GetTerm(), meta.GetIndex()
		st.confState = proto.CloneOf(meta.GetConfState())
		e.members.setConf(st.confState)
	}
	if last := must(e.store.LastIndex()); smApplied > last {
		e.log.Warn("state machine is ahead of the log; entries up to its index will not be applied again",
			"state_machine_applied", smApplied, "last_log_index", last)
	}
	st.smApplied = smApplied
	e.applied.Store(st.index)
	return nil
}
