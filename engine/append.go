package engine

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-db/cairn/storage"
)

// runAppend is the log writer: it persists what raft asks to append
// (MsgStorageAppend), then releases the responses raft attached, which are
// only valid once the write is done. Every message queued while a write was
// in progress goes into the next write: one batch, one fsync (group commit).
//
// Under DiskFirst each batch is fsynced before its responses go out, so
// neither this node's vote for an entry (its MsgAppResp) nor the leader's
// own count of it exists before the entry is on disk. Under MemFirst the
// batch is written without fsync, the responses go out at once, and the
// flusher makes it durable later.
func (e *Engine) runAppend() {
	defer e.wg.Done()
	var (
		msgs    []*raftpb.Message
		updates []storage.Update
		resps   []*raftpb.Message
	)
	diskFirst := e.cfg.Persistence.Strategy == DiskFirst
	observe := e.cfg.FsyncObserver
	timed := observe != nil || e.ev.enabled()
	hs := e.store.HardState()
	term, vote := hs.GetTerm(), hs.GetVote()
	for {
		select {
		case <-e.appendq.notify:
		case <-e.stopc:
			return
		}
		msgs = e.appendq.drain(msgs)
		updates = updates[:0]
		// DiskFirst syncs a batch that holds entries. A batch that only
		// moves the commit index forward is not synced (raft's MustSync):
		// a commit index is learned again from the leader, and the next
		// synced batch makes it durable anyway, Pebble's WAL being ordered.
		sync := false
		var snap *raftpb.Snapshot
		for _, m := range msgs {
			u := storage.Update{Entries: m.GetEntries()}
			if diskFirst && len(u.Entries) > 0 {
				sync = true
			}
			if m.Term != nil { // a HardState is present only when it changed
				u.HardState = &raftpb.HardState{Term: new(m.GetTerm()), Vote: new(m.GetVote()), Commit: new(m.GetCommit())}
				// A vote or term change must be durable before the response
				// that depends on it leaves, whatever the strategy: otherwise a
				// restarted node could vote twice in one term. A new commit
				// index alone need not be: it is learned again from the leader.
				if m.GetTerm() != term || m.GetVote() != vote {
					term, vote = m.GetTerm(), m.GetVote()
					sync = true
				}
			}
			if s := m.GetSnapshot(); !raft.IsEmptySnap(s) {
				u.Snapshot = s
				snap = s
				sync = true
			}
			updates = append(updates, u)
		}
		var start time.Time
		if sync && timed {
			start = time.Now()
		}
		if err := e.store.Write(updates, sync); err != nil {
			e.fail(fmt.Errorf("engine: persist log: %w", err))
			return
		}
		var took time.Duration
		if sync && timed {
			took = time.Since(start)
			if observe != nil {
				observe(took)
			}
		}
		last := must(e.store.LastIndex())
		switch {
		case sync:
			e.durable.Store(last)
			e.synced(took, last)
			if !diskFirst {
				e.flush.checkLag()
			}
		case !diskFirst:
			e.flush.written(last)
		}
		if snap != nil {
			// The state machine must hold the snapshot before raft learns it
			// is applied (the MsgStorageAppendResp below), so that no entry
			// after it is applied to the old state.
			done := make(chan error, 1)
			e.applyq.push(applyTask{restore: snap, restored: done})
			select {
			case err := <-done:
				if err != nil {
					e.fail(err)
					return
				}
			case <-e.stopc:
				return
			}
		}
		resps = resps[:0]
		for _, m := range msgs {
			resps = append(resps, m.GetResponses()...)
		}
		e.deliver(resps)
		clear(msgs)
	}
}

// deliver routes storage responses: to the raft loop for this node, to the
// transport for peers.
func (e *Engine) deliver(resps []*raftpb.Message) {
	var out []*raftpb.Message
	for _, r := range resps {
		if r.GetTo() == e.id {
			e.inbox.push(inboxItem{msg: r})
		} else {
			out = append(out, r)
		}
	}
	if len(out) > 0 {
		e.tr.Send(out)
	}
}

// synced reports a synced write of the log up to index that took d, if it
// was slow (EventSlowFsync). d is 0 when nobody wants it timed.
func (e *Engine) synced(d time.Duration, index uint64) {
	if d > e.cfg.SlowFsyncThreshold && e.ev.enabled() {
		e.ev.emit(Event{Type: EventSlowFsync, Duration: d, SlowThreshold: e.cfg.SlowFsyncThreshold, Index: index})
	}
}

// flusher makes MemFirst writes durable according to the flush policy.
// It is nil under DiskFirst, where every write is synced by the log writer.
type flusher struct {
	e       *Engine
	policy  FlushPolicy
	last    atomic.Uint64 // last index written without sync
	pending atomic.Int64  // entries written since the last flush started
	kick    chan struct{}

	// lagMu orders the flush lag checks of the log writer and the flusher,
	// so that EventFlushLagHigh and EventFlushLagNormal alternate.
	lagMu   sync.Mutex
	lagHigh bool // EventFlushLagHigh was the last reported
}

// checkLag reports the flush lag crossing Config.FlushLagThreshold upwards
// (EventFlushLagHigh), and coming back to half of it or less
// (EventFlushLagNormal): the hysteresis keeps a lag that hovers around the
// threshold from reporting at every write and flush.
func (f *flusher) checkLag() {
	e := f.e
	if !e.ev.enabled() {
		return
	}
	f.lagMu.Lock()
	defer f.lagMu.Unlock()
	last, durable := f.last.Load(), e.durable.Load()
	var lag uint64
	if last > durable {
		lag = last - durable
	}
	th := e.cfg.FlushLagThreshold
	switch {
	case !f.lagHigh && lag > th:
		f.lagHigh = true
		e.ev.emit(Event{Type: EventFlushLagHigh, Lag: lag, LagThreshold: th, Index: last})
	case f.lagHigh && lag <= th/2:
		f.lagHigh = false
		e.ev.emit(Event{Type: EventFlushLagNormal, Lag: lag, LagThreshold: th, Index: durable})
	}
}

func newFlusher(e *Engine) *flusher {
	if e.cfg.Persistence.Strategy != MemFirst {
		return nil
	}
	return &flusher{e: e, policy: e.cfg.Persistence.FlushPolicy, kick: make(chan struct{}, 1)}
}

// written records an unsynced write up to index last.
func (f *flusher) written(last uint64) {
	prev := f.last.Swap(last)
	n := int64(1)
	if last > prev {
		n = int64(last - prev)
	}
	if f.pending.Add(n) >= int64(f.policy.Threshold) || f.policy.Immediate {
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
	f.checkLag()
}

func (f *flusher) run() {
	defer f.e.wg.Done()
	interval := f.policy.Interval
	if f.policy.Immediate || interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-f.kick:
		case <-t.C:
		case <-f.e.stopc:
			return // Stop flushes once every writer has finished
		}
		f.sync()
	}
}

func (f *flusher) sync() {
	if f.pending.Swap(0) == 0 {
		return
	}
	target := f.last.Load()
	observe := f.e.cfg.FsyncObserver
	timed := observe != nil || f.e.ev.enabled()
	var start time.Time
	if timed {
		start = time.Now()
	}
	if err := f.e.store.Sync(); err != nil {
		f.e.fail(fmt.Errorf("engine: flush log: %w", err))
		return
	}
	var took time.Duration
	if timed {
		took = time.Since(start)
		if observe != nil {
			observe(took)
		}
	}
	if target > f.e.durable.Load() {
		f.e.durable.Store(target)
	}
	f.e.synced(took, target)
	f.checkLag()
}
