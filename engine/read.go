package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
)

// A linearizable read (raft's ReadIndex, thesis §6.4) asks the leader for
// its commit index, confirmed by a quorum heartbeat, then waits until this
// node has applied up to it. The raft loop batches reads into rounds: a
// read that arrives when no round is in flight starts one at once (lowest
// latency when idle); reads that arrive while rounds are in flight wait for
// the next round, which starts when those end, or alongside them as soon as
// read_batching.size_threshold reads wait or the oldest has waited
// read_batching.time_threshold_ms. Several rounds may be in flight; raft
// answers each with its context. Under load one quorum round serves many
// reads. Lease reads (lease_read.go) skip the round on a leader that holds a
// lease.

// readReq is one caller waiting for a read index.
type readReq struct {
	done chan uint64 // receives the index; buffered
}

// maxReadRounds bounds the rounds in flight: past it, waiting reads only
// start a round when one ends.
const maxReadRounds = 64

// readRound is one ReadIndex request to raft and the reads it serves.
type readRound struct {
	id    uint64
	reqs  []*readReq
	start time.Time // when raft was asked; a lease runs from here
	term  uint64    // the term this node led in when it asked; 0 if not leader
	age   int       // ticks without an answer
}

// roundReason says what started a round (ReadStats counts them).
type roundReason int

const (
	roundIdle  roundReason = iota // no round was in flight
	roundSize                     // size_threshold reads were waiting
	roundTime                     // the oldest read had waited time_threshold_ms
	roundRenew                    // a lease in use was about to expire
	roundRetry                    // a round got no answer for an election timeout
	numRoundReasons
)

// readRounds is the read path's state. Owned by the raft loop, except the
// counters, which are atomic.
type readRounds struct {
	next         uint64        // id of the latest round started
	rounds       []*readRound  // in flight, oldest first
	pending      []*readReq    // waiting for the next round
	pendingSince time.Time     // when the oldest pending read arrived
	timer        *time.Timer   // fires when the oldest pending read has waited long enough
	timerAt      time.Time     // when timer fires; zero if stopped
	size         int           // read_batching.size_threshold
	wait         time.Duration // read_batching.time_threshold_ms

	counts struct {
		linearizable, lease, eventual atomic.Uint64 // reads served
		leaseLocal, leaseFallback     atomic.Uint64
		rounds                        [numRoundReasons]atomic.Uint64
	}
}

// ReadStats counts reads and ReadIndex rounds since the engine started.
type ReadStats struct {
	// Reads served (ReadBarrier returned nil), by policy.
	Linearizable, Lease, Eventual uint64
	// LeaseLocal counts the lease reads this node served from its lease,
	// with no message; LeaseFallbacks those that ran a ReadIndex round
	// instead, because this node held no valid lease (a follower never
	// does).
	LeaseLocal, LeaseFallbacks uint64
	// Rounds started, by what started them: RoundsIdle by a read arriving
	// when no round was in flight, RoundsSize by size_threshold reads
	// waiting, RoundsTime by the oldest waiting read reaching
	// time_threshold_ms, RoundsRenew to renew a lease in use, RoundsRetry
	// to retry a round unanswered for an election timeout (a leader change
	// drops read requests).
	RoundsIdle, RoundsSize, RoundsTime, RoundsRenew, RoundsRetry uint64
	// LeaseRemaining is what is left of this node's lease; 0 if it holds
	// none.
	LeaseRemaining time.Duration
}

// ReadStats returns the read counters. Safe to call at any time.
func (e *Engine) ReadStats() ReadStats {
	c := &e.reads.counts
	return ReadStats{
		Linearizable:   c.linearizable.Load(),
		Lease:          c.lease.Load(),
		Eventual:       c.eventual.Load(),
		LeaseLocal:     c.leaseLocal.Load(),
		LeaseFallbacks: c.leaseFallback.Load(),
		RoundsIdle:     c.rounds[roundIdle].Load(),
		RoundsSize:     c.rounds[roundSize].Load(),
		RoundsTime:     c.rounds[roundTime].Load(),
		RoundsRenew:    c.rounds[roundRenew].Load(),
		RoundsRetry:    c.rounds[roundRetry].Load(),
		LeaseRemaining: e.lease.remaining(),
	}
}

// initReads prepares the read path; Start calls it before the raft loop
// runs.
func (e *Engine) initReads() {
	rc := e.cfg.ReadConsistency
	e.reads.size = rc.ReadBatching.SizeThreshold
	e.reads.wait = time.Duration(rc.ReadBatching.TimeThresholdMs) * time.Millisecond
	e.reads.timer = time.NewTimer(time.Hour)
	e.reads.timer.Stop()
	e.initLease()
}

// ResolveReadPolicy returns the policy a client's request gets (see
// ReadConsistencyConfig.Resolve): the default for "", requested if
// overrides are allowed, else ErrOverrideNotAllowed.
func (e *Engine) ResolveReadPolicy(requested ReadPolicy) (ReadPolicy, error) {
	return e.cfg.ReadConsistency.Resolve(requested)
}

// ReadBarrier returns once a read of this node's state machine satisfies
// policy p ("" is the configured default policy; see ReadPolicy for what
// each guarantees): at once for EventualConsistency, after a ReadIndex
// round and the apply up to its index for LinearizableRead, and for
// LeaseRead after the apply up to the leader's commit index if this node
// leads with a valid lease, else as LinearizableRead. It does not check
// whether a client may choose p (ResolveReadPolicy does). It fails with
// ctx's error (wrapped) if no leader answers in time, and ErrStopped.
func (e *Engine) ReadBarrier(ctx context.Context, p ReadPolicy) error {
	if p == "" {
		p = e.cfg.ReadConsistency.DefaultPolicy
	}
	c := &e.reads.counts
	switch p {
	case EventualConsistency:
		if e.stopping() {
			return ErrStopped
		}
		c.eventual.Add(1)
		return nil
	case LinearizableRead:
		if err := e.Barrier(ctx); err != nil {
			return err
		}
		c.linearizable.Add(1)
		return nil
	case LeaseRead:
		if idx, ok := e.leaseIndex(); ok {
			if err := e.WaitApplied(ctx, idx); err != nil {
				return err
			}
			c.leaseLocal.Add(1)
		} else {
			c.leaseFallback.Add(1)
			if err := e.Barrier(ctx); err != nil {
				return err
			}
		}
		c.lease.Add(1)
		return nil
	}
	return fmt.Errorf("%w: %q", ErrUnknownReadPolicy, string(p))
}

// ReadIndex returns an index such that a read served from the state machine
// once it has applied that index is linearizable: it reflects every write
// acknowledged before ReadIndex was called. It does not wait for the apply;
// see WaitApplied, or Barrier for both.
func (e *Engine) ReadIndex(ctx context.Context) (uint64, error) {
	r := &readReq{done: make(chan uint64, 1)}
	select {
	case e.readc <- r:
	case <-ctx.Done():
		return 0, fmt.Errorf("engine: read index: %w", ctx.Err())
	case <-e.stopc:
		return 0, ErrStopped
	}
	select {
	case idx := <-r.done:
		return idx, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("engine: read index (no leader answered): %w", ctx.Err())
	case <-e.donec:
		return 0, ErrStopped
	}
}

// Barrier waits until the state machine reflects every write acknowledged
// before the call (ReadIndex, then WaitApplied): a LinearizableRead.
func (e *Engine) Barrier(ctx context.Context) error {
	idx, err := e.ReadIndex(ctx)
	if err != nil {
		return err
	}
	return e.WaitApplied(ctx, idx)
}

// startRead queues a read (or a lease renewal request) and starts a round
// if the batching rules say so. It runs on the raft loop.
func (e *Engine) startRead(rn *raft.RawNode, r *readReq) {
	if r == renewLeaseReq {
		e.renewLease(rn)
		return
	}
	rr := &e.reads
	if len(rr.pending) == 0 {
		rr.pendingSince = time.Now()
	}
	rr.pending = append(rr.pending, r)
	e.kickReads(rn)
}

// kickReads starts a round for the pending reads if none with readers is
// in flight, or if they reached a batching bound; otherwise it sets the
// timer for the time bound.
func (e *Engine) kickReads(rn *raft.RawNode) {
	rr := &e.reads
	if len(rr.pending) == 0 {
		return
	}
	now := time.Now()
	switch {
	case !rr.busy():
		e.startRound(rn, roundIdle, rr.takePending())
	case len(rr.rounds) >= maxReadRounds:
		// Wait for a round to end.
	case len(rr.pending) >= rr.size:
		e.startRound(rn, roundSize, rr.takePending())
	case now.Sub(rr.pendingSince) >= rr.wait:
		e.startRound(rn, roundTime, rr.takePending())
	default:
		rr.armTimer(rr.pendingSince.Add(rr.wait), now)
	}
}

// busy reports whether a round with readers is in flight (a lease renewal
// round has none, and does not hold reads back).
func (rr *readRounds) busy() bool {
	for _, r := range rr.rounds {
		if len(r.reqs) > 0 {
			return true
		}
	}
	return false
}

func (rr *readRounds) armTimer(at, now time.Time) {
	if !rr.timerAt.IsZero() && !at.Before(rr.timerAt) {
		return
	}
	rr.timerAt = at
	rr.timer.Reset(at.Sub(now))
}

// readTimer runs on the raft loop when the batching timer fires.
func (e *Engine) readTimer(rn *raft.RawNode) {
	e.reads.timerAt = time.Time{}
	e.kickReads(rn)
}

func (rr *readRounds) takePending() []*readReq {
	p := rr.pending
	rr.pending = nil
	return p
}

// startRound asks raft for a read index for reqs.
func (e *Engine) startRound(rn *raft.RawNode, why roundReason, reqs []*readReq) {
	rr := &e.reads
	rr.next++
	r := &readRound{id: rr.next, reqs: reqs, start: time.Now()}
	if st := rn.BasicStatus(); st.RaftState == raft.StateLeader {
		r.term = st.GetTerm()
	}
	rr.rounds = append(rr.rounds, r)
	rr.counts.rounds[why].Add(1)
	rn.ReadIndex(readCtx(r.id))
}

// readDone hands a round's index to its readers, lets a leader's round
// renew its lease, and starts the next round if reads wait.
func (e *Engine) readDone(rn *raft.RawNode, ctx []byte, index uint64) {
	rr := &e.reads
	id, ok := parseReadCtx(ctx)
	if !ok {
		return
	}
	i := -1
	for j, r := range rr.rounds {
		if r.id == id {
			i = j
			break
		}
	}
	if i < 0 {
		return // a retried round answered late
	}
	r := rr.rounds[i]
	rr.rounds = slices.Delete(rr.rounds, i, i+1)
	for _, q := range r.reqs {
		q.done <- index
	}
	if r.term != 0 {
		e.leaseConfirmed(rn, r)
	}
	e.kickReads(rn)
}

// tickReads retries rounds that got no answer within an election timeout:
// raft drops read requests when leadership changes, and a follower's when
// it knows no leader.
func (e *Engine) tickReads(rn *raft.RawNode) {
	rr := &e.reads
	var retry []*readReq
	kept := rr.rounds[:0]
	for _, r := range rr.rounds {
		if r.age++; r.age > e.cfg.Raft.ElectionTick {
			retry = append(retry, r.reqs...)
			continue
		}
		kept = append(kept, r)
	}
	clear(rr.rounds[len(kept):])
	rr.rounds = kept
	if len(retry) > 0 {
		if e.ev.enabled() {
			e.ev.emit(Event{Type: EventReadIndexTimedOut, Count: uint64(len(retry))})
		}
		e.startRound(rn, roundRetry, append(retry, rr.takePending()...))
	}
}

func readCtx(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("r"), id)
}

func parseReadCtx(ctx []byte) (uint64, bool) {
	if len(ctx) != 9 || ctx[0] != 'r' {
		return 0, false // the Ready probe, or not ours
	}
	return binary.BigEndian.Uint64(ctx[1:]), true
}

// WaitApplied waits until the state machine has applied index.
func (e *Engine) WaitApplied(ctx context.Context, index uint64) error {
	if e.applied.Load() >= index {
		return nil
	}
	ch := e.appliedWait.add(index)
	if e.applied.Load() >= index { // applied between the check and add
		e.appliedWait.notify(e.applied.Load())
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("engine: waiting for index %d to apply: %w", index, ctx.Err())
	case <-e.donec:
		return ErrStopped
	}
}

// appliedWaiters wakes goroutines waiting for an index to be applied.
type appliedWaiters struct {
	mu sync.Mutex
	w  []appliedWaiter
}

type appliedWaiter struct {
	index uint64
	ch    chan struct{}
}

func (a *appliedWaiters) add(index uint64) <-chan struct{} {
	ch := make(chan struct{})
	a.mu.Lock()
	a.w = append(a.w, appliedWaiter{index, ch})
	a.mu.Unlock()
	return ch
}

// notify wakes every waiter for an index at or below applied.
func (a *appliedWaiters) notify(applied uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	kept := a.w[:0]
	for _, w := range a.w {
		if w.index <= applied {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(a.w[len(kept):])
	a.w = kept
}
