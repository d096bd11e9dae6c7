package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// A proposal is a payload on its way into the log. Its entry starts with the
// proposing node's id and a sequence number, so that the node that proposed
// it, and only that node, finds the caller waiting for it when it applies.
// Sequence numbers start from the clock at every start, so an entry proposed
// before a restart never matches a waiter after it.
type proposal struct {
	seq  uint64
	data []byte
}

type result struct {
	value any
	err   error
}

// Propose replicates data and applies it to the state machine, returning
// what the state machine's Apply returned for it. It returns
// ErrProposalDropped if raft refused it (not committed; retry), ErrTooLarge,
// ErrStopped, or, when ctx ends first, an error wrapping both
// ErrProposalTimeout and ctx.Err(): the proposal may still commit.
func (e *Engine) Propose(ctx context.Context, data []byte) (any, error) {
	if len(data) > e.cfg.Raft.MaxProposalBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d (raft.max_proposal_bytes)", ErrTooLarge, len(data), e.cfg.Raft.MaxProposalBytes)
	}
	seq := e.seq.Add(1)
	p := &proposal{seq: seq, data: encodeProposal(e.id, seq, data)}
	ch := e.waiters.register(seq)
	select {
	case e.propc <- []*proposal{p}:
	case <-ctx.Done():
		e.waiters.cancel(seq)
		return nil, fmt.Errorf("engine: proposal not submitted: %w", ctx.Err())
	case <-e.stopc:
		e.waiters.cancel(seq)
		return nil, ErrStopped
	}
	return e.wait(ctx, seq, ch)
}

func (e *Engine) wait(ctx context.Context, seq uint64, ch <-chan result) (any, error) {
	select {
	case r := <-ch:
		return r.value, r.err
	case <-ctx.Done():
		e.waiters.cancel(seq)
		return nil, fmt.Errorf("%w: %w", ErrProposalTimeout, ctx.Err())
	case <-e.donec:
		return nil, ErrStopped
	}
}

func encodeProposal(node, seq uint64, data []byte) []byte {
	b := make([]byte, 0, 2*binary.MaxVarintLen64+len(data))
	b = binary.AppendUvarint(b, node)
	b = binary.AppendUvarint(b, seq)
	return append(b, data...)
}

var errBadProposal = errors.New("malformed proposal header")

func decodeProposal(b []byte) (node, seq uint64, data []byte, err error) {
	node, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, nil, errBadProposal
	}
	seq, m := binary.Uvarint(b[n:])
	if m <= 0 {
		return 0, 0, nil, errBadProposal
	}
	return node, seq, b[n+m:], nil
}

// waiters maps the sequence numbers of this node's proposals to the callers
// waiting for them.
type waiters struct {
	mu sync.Mutex
	m  map[uint64]chan result
}

func (w *waiters) register(seq uint64) <-chan result {
	ch := make(chan result, 1)
	w.mu.Lock()
	w.m[seq] = ch
	w.mu.Unlock()
	return ch
}

func (w *waiters) cancel(seq uint64) {
	w.mu.Lock()
	delete(w.m, seq)
	w.mu.Unlock()
}

func (w *waiters) resolve(seq uint64, r result) {
	w.mu.Lock()
	ch, ok := w.m[seq]
	delete(w.m, seq)
	w.mu.Unlock()
	if ok {
		ch <- r // buffered: never blocks
	}
}

func (w *waiters) failAll(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for seq, ch := range w.m {
		ch <- result{err: err}
		delete(w.m, seq)
	}
}
