package storage

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"go.etcd.io/raft/v3"
)

// The raft goroutine reads while the log writer appends and the snapshotter
// compacts (see the package doc). A read racing a compaction may fail with
// ErrCompacted, which raft handles by sending a snapshot; it must never see
// a half-applied state: an entry reported missing (ErrCorrupt, which raft
// treats as fatal), a wrong entry, or a gap.
func TestConcurrentReadsWriteCompact(t *testing.T) {
	const (
		batches   = 400
		batchSize = 8
	)
	// A one-entry cache sends the reads near the compaction point to Pebble.
	s := openStore(t, t.TempDir(), Options{CacheEntries: 1})
	appendEnts(t, s, index(1).terms(1, 1, 1, 1, 1, 1, 1, 1))

	var (
		wg     sync.WaitGroup
		stop   = make(chan struct{})
		errMu  sync.Mutex
		failed []string
	)
	fail := func(format string, args ...any) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(failed) < 10 {
			failed = append(failed, fmt.Sprintf(format, args...))
		}
	}
	// The writer appends; the compactor follows it, one index at a time.
	wg.Go(func() {
		defer close(stop)
		next := uint64(batchSize + 1)
		for b := range batches {
			ents := index(next).terms(repeat(uint64(1+b/50), batchSize)...)
			if err := s.Write([]Update{{Entries: ents}}, false); err != nil {
				fail("Write: %v", err)
				return
			}
			next += batchSize
			last, _ := s.LastIndex()
			for c := last - batchSize*2; c < last-batchSize; c++ {
				if err := s.Compact(c); err != nil {
					fail("Compact(%d): %v", c, err)
					return
				}
			}
		}
	})
	// Two readers, as raft reads for several followers: entries just above
	// the compaction point, and terms.
	for r := range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				first, _ := s.FirstIndex()
				last, _ := s.LastIndex()
				if first > last {
					continue
				}
				if r == 0 {
					ents, err := s.Entries(first, min(first+4, last+1), noLimit)
					switch {
					case errors.Is(err, raft.ErrCompacted):
					case err != nil:
						fail("Entries(%d, %d): %v", first, min(first+4, last+1), err)
					default:
						for k, e := range ents {
							if e.GetIndex() != first+uint64(k) || string(e.GetData()) != fmt.Sprintf("%d/%d", e.GetIndex(), e.GetTerm()) {
								fail("Entries(%d, …)[%d] = %v", first, k, e)
							}
						}
					}
				} else {
					if _, err := s.Term(first); err != nil && !errors.Is(err, raft.ErrCompacted) {
						fail("Term(%d): %v", first, err)
					}
				}
			}
		})
	}
	wg.Wait()
	for _, f := range failed {
		t.Error(f)
	}
	// Whatever the readers saw, the log itself is intact and contiguous.
	got := readLog(t, s)
	if got.last != batchSize*(batches+1) || got.first != got.last-batchSize {
		t.Fatalf("log after the run: [%d, %d]", got.first, got.last)
	}
	for k, e := range got.ents {
		if e.GetIndex() != got.first+uint64(k) {
			t.Fatalf("entry %d has index %d", got.first+uint64(k), e.GetIndex())
		}
	}
	checkCache(t, s)
}
