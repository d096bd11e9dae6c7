package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"go.etcd.io/raft/v3"
)

// A linearizable read (raft's ReadIndex, thesis §6.4) asks the leader for
// its commit index, confirmed by a quorum heartbeat, then waits until this
// node has applied up to it. Requests that arrive while a round is in
// flight share the next round: under load one quorum round serves many
// reads.

// readReq is one caller waiting for a read index.
type readReq struct {
	done chan uint64 // receives the index; buffered
}

// readRounds is the raft loop's bookkeeping of read index rounds.
type readRounds struct {
	next     uint64     // id of the next round
	inflight uint64     // id of the round in flight, 0 if none
	waiting  []*readReq // served by the round in flight
	pending  []*readReq // queued for the next round
	age      int        // ticks the round in flight has been waiting
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
// before the call (ReadIndex, then WaitApplied).
func (e *Engine) Barrier(ctx context.Context) error {
	idx, err := e.ReadIndex(ctx)
	if err != nil {
		return err
	}
	return e.WaitApplied(ctx, idx)
}

// startRead queues a read and starts a round if none is in flight. It runs
// on the raft loop.
func (e *Engine) startRead(rn *raft.RawNode, r *readReq) {
	e.reads.pending = append(e.reads.pending, r)
	if e.reads.inflight == 0 {
		e.nextReadRound(rn)
	}
}

func (e *Engine) nextReadRound(rn *raft.RawNode) {
	rr := &e.reads
	if len(rr.pending) == 0 {
		rr.inflight = 0
		return
	}
	rr.next++
	rr.inflight, rr.age = rr.next, 0
	rr.waiting, rr.pending = append(rr.waiting, rr.pending...), nil
	rn.ReadIndex(readCtx(rr.inflight))
}

// readDone hands a round's index to its readers and starts the next round.
func (e *Engine) readDone(rn *raft.RawNode, ctx []byte, index uint64) {
	rr := &e.reads
	if rr.inflight == 0 || string(ctx) != string(readCtx(rr.inflight)) {
		return // a retried round answered late, or the Ready probe
	}
	for _, r := range rr.waiting {
		r.done <- index
	}
	clear(rr.waiting)
	rr.waiting = rr.waiting[:0]
	e.nextReadRound(rn)
}

// tickReads retries a round that got no answer within an election timeout:
// raft drops read requests when leadership changes.
func (e *Engine) tickReads(rn *raft.RawNode) {
	rr := &e.reads
	if rr.inflight == 0 {
		return
	}
	if rr.age++; rr.age > e.cfg.Raft.ElectionTick {
		rr.pending = append(rr.waiting, rr.pending...)
		rr.waiting = nil
		rr.inflight = 0
		e.nextReadRound(rn)
	}
}

func readCtx(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("r"), id)
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
