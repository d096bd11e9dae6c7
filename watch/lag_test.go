package watch

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestStalledWatcherCatchesUpExactly: a watcher that does not read while
// 100,000 revisions are notified neither blocks Notify nor loses anything;
// the hub holds no backlog for it (its buffer is its channel, and while it
// catches up it holds one History chunk), and once it reads again it gets
// exactly the model's stream, then rejoins the live path.
func TestStalledWatcherCatchesUpExactly(t *testing.T) {
	const (
		revisions = 100_000
		buffer    = 8
		chunk     = 256
	)
	e := newEnv(t, Config{WatcherBufferSize: buffer, EventQueueSize: chunk})
	stalled := e.watch("k/", WithPrefix(), WithPrevKV())
	live := record(t, e.watch("k/7"))

	keys := make([]string, 10)
	for i := range keys {
		keys[i] = fmt.Sprintf("k/%d", i)
	}
	start := time.Now()
	for i := range revisions {
		e.commit(put(keys[i%len(keys)], fmt.Sprint(i)))
		if i%10_000 == 0 {
			if n := len(stalled.C()); n > buffer {
				t.Fatalf("buffer holds %d responses, limit %d", n, buffer)
			}
		}
	}
	notifyTime := time.Since(start)
	final := e.store.Rev()

	st := e.hub.Stats()
	e.hub.mu.Lock()
	offPath := stalled.syncing && stalled.grp == nil
	e.hub.mu.Unlock()
	if !offPath || st.Unsynced < 1 {
		// Once off the live path it stays off while it does not read, so
		// Notify touched it once: its cost for a stalled watcher is O(1).
		t.Fatalf("want the stalled watcher off the live path: %+v", st)
	}
	if st.CatchUpEvents > chunk {
		t.Fatalf("hub holds %d events for the stalled watcher, want at most one chunk (%d)", st.CatchUpEvents, chunk)
	}
	if n := len(stalled.C()); n != buffer || cap(stalled.C()) != buffer {
		t.Fatalf("stalled buffer: %d of %d responses, want it full at %d", n, cap(stalled.C()), buffer)
	}
	// The live watcher was never held up by the stalled one.
	live.syncTo(t, final)

	var resps []Response
	progressAsked := false
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for done := false; !done; {
		select {
		case r := <-stalled.C():
			resps = append(resps, r)
			if r.ProgressNotify && r.Revision >= final {
				done = true
			}
			if len(resps)%1000 == 0 {
				if held := e.hub.Stats().CatchUpEvents; held > chunk {
					t.Fatalf("hub holds %d events while catching up, want at most %d", held, chunk)
				}
			}
			if !progressAsked && len(resps) >= buffer {
				stalled.RequestProgress() // delivered once it has caught up
				progressAsked = true
			}
		case <-timer.C:
			t.Fatalf("stalled watcher did not catch up: read %s", fmtResps(resps))
		}
	}
	model := e.store.model()
	if err := checkAll(model, specOf(t, "k/", 1, WithPrefix(), WithPrevKV()), resps, final); err != nil {
		t.Fatal(err)
	}
	e.store.mu.Lock()
	asked, reads := e.store.maxAsked, e.store.reads
	e.store.mu.Unlock()
	if asked > chunk {
		t.Fatalf("History asked for %d events at once, want at most %d", asked, chunk)
	}
	waitSynced(t, e.hub)
	// Back on the live path.
	e.commit(put("k/1", "after"))
	if r := <-stalled.C(); len(r.Events) != 1 || string(r.Events[0].Kv.Value) != "after" {
		t.Fatalf("after catching up: got %s", fmtResp(r))
	}
	t.Logf("%d revisions notified in %v with a stalled watcher (%d overflows in all); caught up in %d responses over %d History reads",
		revisions, notifyTime, st.Overflows, len(resps), reads)
}

// TestWatchFromCompactedRevision: a watch from a revision at or below the
// compact revision ends at once with a cancel carrying it, and Err wraps
// ErrCompacted with it.
func TestWatchFromCompactedRevision(t *testing.T) {
	e := newEnv(t, Config{})
	e.puts(10, "a")
	e.store.Compact(6)
	for _, start := range []int64{1, 6} {
		w := e.watch("a", WithRev(start))
		resps := drain(t, w)
		if len(resps) != 1 || !resps[0].Canceled || resps[0].CompactRevision != 6 || len(resps[0].Events) != 0 {
			t.Fatalf("start %d: want one cancel at compact revision 6, got %s", start, fmtResps(resps))
		}
		err := w.Err()
		if rev, ok := CompactRevision(err); !errors.Is(err, ErrCompacted) || !ok || rev != 6 {
			t.Fatalf("start %d: Err() = %v, want ErrCompacted at 6", start, err)
		}
		if errors.Is(err, ErrClosed) {
			t.Fatalf("a compaction must not look like a close: %v", err)
		}
	}
	// From the first revision after it: all of history.
	w := e.watch("a", WithRev(7))
	rec := record(t, w)
	resps, _ := rec.syncTo(t, 10)
	if err := checkAll(e.store.model(), specOf(t, "a", 7), resps, 10); err != nil {
		t.Fatal(err)
	}
	if st := e.hub.Stats(); st.Compacted != 2 || st.Watchers != 1 {
		t.Fatalf("stats %+v: want 2 compacted, 1 watcher left", st)
	}
}

// TestFallBehindPastCompaction: a stalled watcher whose next revision is
// compacted away receives what its buffer held, then the cancel with the
// compact revision — never silence.
func TestFallBehindPastCompaction(t *testing.T) {
	e := newEnv(t, Config{WatcherBufferSize: 4, EventQueueSize: 4})
	w := e.watch("a")
	e.puts(50, "a", "b")
	e.store.Compact(40)
	e.puts(5, "a") // nothing for the catch-up goroutine to wait for; it already waits on the reader
	resps := drain(t, w)
	last := resps[len(resps)-1]
	if !last.Canceled || last.CompactRevision != 40 {
		t.Fatalf("want a final cancel at compact revision 40, got %s", fmtResps(resps))
	}
	if err := checkAll(e.store.model(), specOf(t, "a", 1), resps, 0); err != nil {
		t.Fatal(err)
	}
	if rev, ok := CompactRevision(w.Err()); !ok || rev != 40 {
		t.Fatalf("Err() = %v, want compacted at 40", w.Err())
	}
	if !stringsContain(w.Err().Error(), "resync from revision 40") {
		t.Fatalf("Err() = %q: should say where to resync from", w.Err())
	}
}

// TestHistoryErrorCancels: a History failure other than compaction ends the
// watcher with that error and an explicit cancel, not silence.
func TestHistoryErrorCancels(t *testing.T) {
	e := newEnv(t, Config{})
	e.puts(5, "a")
	boom := errors.New("disk on fire")
	e.store.mu.Lock()
	e.store.fail = boom
	e.store.mu.Unlock()
	w := e.watch("a", WithRev(1))
	resps := drain(t, w)
	if len(resps) != 1 || !resps[0].Canceled || resps[0].CompactRevision != 0 || !stringsContain(resps[0].CancelReason, "disk on fire") {
		t.Fatalf("want one cancel naming the error, got %s", fmtResps(resps))
	}
	if !errors.Is(w.Err(), boom) || errors.Is(w.Err(), ErrCompacted) {
		t.Fatalf("Err() = %v, want the History error", w.Err())
	}
}

// TestHistoryBehindNotify: a store that notifies a revision before History
// has it breaks the contract; the watcher that needs it ends with
// ErrHistoryGap rather than skip it.
func TestHistoryBehindNotify(t *testing.T) {
	e := newEnv(t, Config{WatcherBufferSize: 1})
	w := e.watch("a")
	e.puts(3, "a")                              // fills its buffer
	ghost, _ := newStore().apply(put("a", "x")) // not in e.store
	ghost.Rev = e.store.Rev() + 1
	if err := e.hub.Notify([]Revision{ghost}); err != nil {
		t.Fatal(err)
	}
	resps := drain(t, w)
	if !errors.Is(w.Err(), ErrHistoryGap) || !resps[len(resps)-1].Canceled {
		t.Fatalf("Err() = %v, stream %s: want ErrHistoryGap and a cancel", w.Err(), fmtResps(resps))
	}
}

// TestHerdCatchesUp: many watchers of one key, all sent off the live path
// by the same writes, all catch up exactly (sharing History chunks where
// they can: see TestChunkSharing).
func TestHerdCatchesUp(t *testing.T) {
	const (
		watchers = 100
		chunk    = 10
		revs     = 200
	)
	e := newEnv(t, Config{WatcherBufferSize: 1, EventQueueSize: chunk})
	var recs []*recorder
	for range watchers {
		r := record(t, e.watch("k"))
		r.pause()
		recs = append(recs, r)
	}
	e.puts(revs, "k")
	model := e.store.model()
	for _, r := range recs {
		r.unpause()
	}
	for i, r := range recs {
		resps, _ := r.syncTo(t, revs)
		if err := checkAll(model, specOf(t, "k", 1), resps, revs); err != nil {
			t.Fatalf("watcher %d: %v", i, err)
		}
	}
	e.store.mu.Lock()
	reads := e.store.reads
	e.store.mu.Unlock()
	t.Logf("%d History reads for %d watchers catching up %d revisions in chunks of %d (unshared: about %d)",
		reads, watchers, revs, chunk, watchers*revs/chunk)
}

// TestChunkSharing: a full History chunk is read once and served for any
// revision inside it, also to reads that were waiting for it in flight; a
// short chunk is never shared (it would be stale); a shared chunk is not
// served for a compacted revision.
func TestChunkSharing(t *testing.T) {
	e := newEnv(t, Config{EventQueueSize: 10})
	e.puts(25, "k")
	reads := func() int {
		e.store.mu.Lock()
		defer e.store.mu.Unlock()
		return e.store.reads
	}
	gate := make(chan struct{})
	e.store.mu.Lock()
	e.store.block = gate
	e.store.mu.Unlock()
	var wg sync.WaitGroup
	results := make([][]Revision, 8)
	read := func(i int) {
		revs, complete, err := e.hub.readChunk(3 + int64(i%2)) // 3, or 4 from inside the chunk
		if err != nil || complete {
			t.Errorf("readChunk: complete %v, %v", complete, err)
		}
		results[i] = revs
	}
	wg.Go(func() { read(0) })
	waitFor(t, "the first read", func() bool { return reads() == 1 })
	for i := 1; i < len(results); i++ { // they find the first read in flight
		wg.Go(func() { read(i) })
	}
	close(gate)
	wg.Wait()
	if n := reads(); n != 1 {
		t.Fatalf("%d History reads for one chunk", n)
	}
	for i, revs := range results {
		if want := 3 + int64(i%2); len(revs) == 0 || revs[0].Rev != want || revs[len(revs)-1].Rev != 12 {
			t.Fatalf("read %d: got revisions %d..%d, want %d..12", i, revs[0].Rev, revs[len(revs)-1].Rev, want)
		}
	}
	// The tail is short: read every time.
	for range 2 {
		if _, complete, err := e.hub.readChunk(20); err != nil || !complete {
			t.Fatalf("tail: complete %v, %v", complete, err)
		}
	}
	if n := reads(); n != 3 {
		t.Fatalf("%d History reads, want the tail read twice", n)
	}
	e.store.Compact(5)
	if _, _, err := e.hub.readChunk(4); !errors.Is(err, ErrCompacted) {
		t.Fatalf("cached chunk served for a compacted revision: %v", err)
	}
}
