package engine

import (
	"fmt"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// maybeSnapshot takes a snapshot when Snapshot.Threshold entries have been
// applied since the last one, or when the membership changed since a
// snapshot was last taken: raft refuses to install a snapshot whose
// configuration does not include the receiving node, so a node added after
// the latest snapshot could not catch up from it. It runs on the apply
// loop: the state machine's point-in-time view is taken here, between
// batches, and written to disk by another goroutine while applying goes on.
func (e *Engine) maybeSnapshot() {
	st := &e.as
	due := st.index >= st.snapIndex+e.cfg.Snapshot.Threshold ||
		st.snapIndex > 0 && st.confIndex > st.snapIndex
	if !due || st.snapping.Load() {
		return
	}
	view, err := e.sm.Snapshot()
	if err != nil {
		e.fail(fmt.Errorf("engine: state machine snapshot at %d: %w", st.index, err))
		return
	}
	meta := &raftpb.SnapshotMetadata{Index: new(st.index), Term: new(st.term), ConfState: proto.CloneOf(st.confState)}
	members := e.members.encode()
	st.snapping.Store(true)
	st.snapIndex = st.index
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		err := e.writeSnapshot(meta, members, view)
		st.snapping.Store(false)
		if err != nil {
			e.fail(err)
			return
		}
		// Another snapshot may have become due meanwhile (a membership
		// change); with no new entries, nothing else would wake the loop.
		e.applyq.push(applyTask{})
	}()
}

// writeSnapshot writes a snapshot file, records it as the latest, and
// compacts the log behind it, keeping CatchUpMargin entries.
func (e *Engine) writeSnapshot(meta *raftpb.SnapshotMetadata, members []byte, view Snapshot) error {
	defer view.Release()
	start := time.Now()
	w, err := e.store.CreateSnapshot(meta, members)
	if err != nil {
		return err
	}
	n, err := view.WriteTo(w)
	if err != nil {
		w.Abort()
		return fmt.Errorf("engine: write snapshot %d: %w", meta.GetIndex(), err)
	}
	if err := w.Finish(); err != nil {
		return err
	}
	if err := e.store.SetSnapshot(meta); err != nil {
		return err
	}
	if margin := e.cfg.Snapshot.CatchUpMargin; meta.GetIndex() > margin {
		if err := e.store.Compact(meta.GetIndex() - margin); err != nil {
			return err
		}
	}
	if e.ev.enabled() {
		e.ev.emit(Event{Type: EventSnapshotCreated, Index: meta.GetIndex(), Term: meta.GetTerm(), Bytes: n, Duration: time.Since(start)})
	}
	e.log.Debug("snapshot created", "index", meta.GetIndex(), "bytes", n, "took", time.Since(start))
	return nil
}
