package mvcc

import (
	"bytes"
	"fmt"
)

// History returns the revisions from `from` on, oldest first, each complete
// (never split), for watchers replaying or catching up. It stops at a
// revision boundary once it holds maxEvents events or more (no limit if
// maxEvents <= 0), so one revision may take it past maxEvents; call again
// from the last revision + 1 to continue. An empty answer means `from` is
// above the current revision.
//
// from below the compacted revision fails with a *CompactedError (matching
// ErrCompacted) that carries the compacted revision; from equal to it works:
// compaction keeps the events of the compacted revision, so a watcher told
// to resynchronise from the compacted revision can. from must be >= 1.
//
// Events carry PrevKv whenever the key existed before the event. History
// reads one consistent view and may be called from any goroutine.
func (s *Store) History(from int64, maxEvents int) ([]Revision, error) {
	if from < 1 {
		return nil, fmt.Errorf("history: %w: from %d, history starts at 1", ErrInvalidRevision, from)
	}
	v, err := s.openView()
	if err != nil {
		return nil, err
	}
	defer v.close()
	if from < v.compactRev {
		return nil, fmt.Errorf("history: %w", &CompactedError{Requested: from, CompactRev: v.compactRev})
	}
	it, err := v.iter()
	if err != nil {
		return nil, err
	}
	var (
		revs   []Revision
		events int
	)
	for ok := it.SeekGE(historyKey(from, 0)); ok && bytes.Compare(it.Key(), historyEnd) < 0; ok = it.Next() {
		main, _, good := parseHistoryKey(it.Key())
		if !good {
			return nil, corrupt(it.Key(), "malformed history key")
		}
		if len(revs) == 0 || revs[len(revs)-1].Rev != main {
			if maxEvents > 0 && events >= maxEvents {
				break
			}
			revs = append(revs, Revision{Rev: main})
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("mvcc: read %q: %w", it.Key(), err)
		}
		ev, err := decodeEvent(it.Key(), main, val)
		if err != nil {
			return nil, err
		}
		last := &revs[len(revs)-1]
		last.Events = append(last.Events, ev)
		events++
	}
	if err := iterErr(it); err != nil {
		return nil, err
	}
	return revs, nil
}
