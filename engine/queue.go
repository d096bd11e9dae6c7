package engine

import "sync"

// queue is an unbounded FIFO hand-off between goroutines that must never
// block each other: the raft loop pushes storage work without waiting, and
// storage threads push responses back without waiting. Its length is bounded
// in practice by raft's own flow control (in-flight and uncommitted limits).
type queue[T any] struct {
	mu     sync.Mutex
	items  []T
	notify chan struct{} // holds a token while items is non-empty
}

func newQueue[T any]() *queue[T] {
	return &queue[T]{notify: make(chan struct{}, 1)}
}

func (q *queue[T]) push(items ...T) {
	q.mu.Lock()
	q.items = append(q.items, items...)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// drain takes everything queued; it returns buf's storage reused.
func (q *queue[T]) drain(buf []T) []T {
	q.mu.Lock()
	buf = append(buf[:0], q.items...)
	clear(q.items)
	q.items = q.items[:0]
	q.mu.Unlock()
	return buf
}
