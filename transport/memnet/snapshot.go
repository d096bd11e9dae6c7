package memnet

import (
	"errors"
	"fmt"
	"io"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-db/cairn/transport"
)

// chunkSize is how much snapshot data is copied between two checks that the
// link is still up and both endpoints are still open, so that a partition or
// a crash breaks a transfer midway, as it would break a stream.
const chunkSize = 32 << 10

var (
	errNoStore = errors.New("memnet: no snapshot store")
	errCut     = errors.New("memnet: link cut during snapshot transfer")
)

// startTransferLocked copies the snapshot of MsgSnap m from one endpoint's
// store to the other's on a goroutine of its own, then delivers m. Both
// endpoints count the goroutine, so that closing either one waits for it;
// the goroutine watches both and fails the transfer when one closes.
func (n *Network) startTransferLocked(from, to *Transport, m *raftpb.Message, delay time.Duration) {
	l := link{from.id, to.id}
	fail := func() {
		n.stats.update(l, func(s *Stats) {
			s.drop(dropUnreachable)
			s.SnapshotsFailed++
		})
		from.reports.snapshot(to.id, false)
	}
	if !from.track() {
		fail()
		return
	}
	if !to.track() {
		from.wg.Done()
		fail()
		return
	}
	go n.transfer(from, to, m, delay)
}

// transfer runs the transfer of one MsgSnap and reports its outcome exactly
// once: through the receiver's inbox on success (ReportSnapshot true after
// Deliver, or false if the receiver closes first), directly on failure.
func (n *Network) transfer(from, to *Transport, m *raftpb.Message, delay time.Duration) {
	defer from.wg.Done()
	defer to.wg.Done()
	l := link{from.id, to.id}

	start := time.Now()
	reason, moved, err := n.copySnapshot(from, to, m, delay)
	if err == nil {
		md := m.GetSnapshot().GetMetadata()
		x := &transport.SnapshotTransfer{Peer: from.id, Received: true, Term: md.GetTerm(), Index: md.GetIndex(),
			Bytes: moved, Duration: time.Since(start)}
		// Deliver through the inbox so that only the receiver's delivery
		// goroutine calls Deliver, and Close drops it like any queued
		// message.
		n.mu.Lock()
		if n.mu.cuts.cut(from.id, to.id) {
			reason, err = dropCut, errCut
		} else {
			drop := func(r dropReason) { reason, err = r, errors.New("memnet: receiver not ready") }
			n.queueLocked(to, envelope{m: m, from: from, at: time.Now(), snap: true, xfer: x}, drop)
		}
		n.mu.Unlock()
	}
	if err != nil {
		n.stats.update(l, func(s *Stats) {
			s.drop(reason)
			s.SnapshotsFailed++
		})
		from.reports.snapshot(to.id, false)
	}
}

// copySnapshot waits for the link's delay, then copies the snapshot's data
// from the sender's store to the receiver's, resuming at the receiver
// writer's Offset, and commits it. On failure the writer is closed without
// Commit, so that the bytes received are kept for the next attempt; the
// returned reason says how to count the lost MsgSnap. It returns the number
// of bytes it copied.
func (n *Network) copySnapshot(from, to *Transport, m *raftpb.Message, delay time.Duration) (reason dropReason, moved int64, err error) {
	reason, err = n.copySnapshotData(from, to, m, delay, &moved)
	return reason, moved, err
}

func (n *Network) copySnapshotData(from, to *Transport, m *raftpb.Message, delay time.Duration, moved *int64) (dropReason, error) {
	if delay > 0 && !sleep(delay, from.done, to.done) {
		return dropUnreachable, transport.ErrClosed
	}
	if from.snaps == nil || to.snaps == nil {
		return dropFailed, errNoStore
	}
	md := m.GetSnapshot().GetMetadata()
	if md == nil {
		return dropFailed, errors.New("memnet: MsgSnap without snapshot metadata")
	}
	term, index := md.GetTerm(), md.GetIndex()

	r, err := from.snaps.OpenSnapshot(term, index)
	if err != nil {
		return dropFailed, fmt.Errorf("open snapshot %d/%d: %w", term, index, err)
	}
	defer r.Close()
	size := r.Size()
	w, err := to.snaps.ReceiveSnapshot(term, index, size)
	if err != nil {
		return dropFailed, fmt.Errorf("receive snapshot %d/%d: %w", term, index, err)
	}
	// Closed after Commit too: Close releases the writer either way.
	defer w.Close()

	off := w.Offset()
	if off < 0 || off > size {
		return dropFailed, fmt.Errorf("snapshot %d/%d: receiver offset %d outside size %d", term, index, off, size)
	}
	if _, err := r.Seek(off, io.SeekStart); err != nil {
		return dropFailed, fmt.Errorf("seek snapshot %d/%d to %d: %w", term, index, off, err)
	}
	buf := make([]byte, min(chunkSize, size-off))
	for remaining := size - off; remaining > 0; {
		if reason, err := n.linkUp(from, to); err != nil {
			return reason, err
		}
		k := min(int64(len(buf)), remaining)
		nr, rerr := io.ReadFull(r, buf[:k])
		// Keep what was read before a failure: the next attempt resumes
		// after it.
		if nr > 0 {
			if _, err := w.Write(buf[:nr]); err != nil {
				return dropFailed, fmt.Errorf("write snapshot %d/%d: %w", term, index, err)
			}
			remaining -= int64(nr)
			*moved += int64(nr)
		}
		if rerr != nil {
			return dropFailed, fmt.Errorf("read snapshot %d/%d: %w", term, index, rerr)
		}
	}
	if reason, err := n.linkUp(from, to); err != nil {
		return reason, err
	}
	if err := w.Commit(); err != nil {
		return dropFailed, fmt.Errorf("commit snapshot %d/%d: %w", term, index, err)
	}
	return 0, nil
}

// linkUp reports why a transfer between from and to must stop, if it must.
func (n *Network) linkUp(from, to *Transport) (dropReason, error) {
	select {
	case <-from.done:
		return dropUnreachable, transport.ErrClosed
	case <-to.done:
		return dropUnreachable, transport.ErrClosed
	default:
	}
	if n.Cut(from.id, to.id) {
		return dropCut, errCut
	}
	return 0, nil
}

// sleep waits for d and reports true, or reports false as soon as one of
// the channels is closed.
func sleep(d time.Duration, stop1, stop2 <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop1:
		return false
	case <-stop2:
		return false
	}
}
