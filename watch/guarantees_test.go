package watch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
)

// watched is one watcher of a randomized run, with what it asked for.
type watched struct {
	spec
	rec *recorder
}

// randomWatch opens a watcher of a random kind, start and options.
func randomWatch(t *testing.T, e *env, rnd *rand.Rand) watched {
	t.Helper()
	var key string
	var opts []Option
	switch rnd.IntN(6) {
	case 0, 1:
		key = fmt.Sprintf("k%d", rnd.IntN(6))
	case 2:
		key, opts = "p/", []Option{WithPrefix()}
	case 3:
		key, opts = "k2", []Option{WithRange([]byte("k5"))}
	case 4:
		key, opts = "k4", []Option{WithFromKey()}
	default:
		key, opts = "", []Option{WithPrefix()}
	}
	for _, o := range []Option{WithPrevKV(), WithFilterPut(), WithFilterDelete(), WithFragment(), WithProgressNotify()} {
		if rnd.IntN(4) == 0 {
			opts = append(opts, o)
		}
	}
	cur, compact := e.store.Rev(), e.store.CompactRev()
	start := cur + 1 // WithRev(0): from the next revision
	switch rnd.IntN(4) {
	case 0, 1: // a past revision still in history
		if cur > compact {
			start = compact + 1 + rnd.Int64N(cur-compact)
			opts = append(opts, WithRev(start))
		}
	case 2: // a future revision
		start = cur + 1 + rnd.Int64N(20)
		opts = append(opts, WithRev(start))
	}
	w := e.watch(key, opts...)
	return watched{spec: specOf(t, key, start, opts...), rec: record(t, w)}
}

// randomOps returns the ops of one random revision over a small key space:
// mostly puts, some deletes, some multi-key txns.
func randomOps(e *env, rnd *rand.Rand) []op {
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "p/a", "p/b", "p/c", "q"}
	existing := e.store.keys()
	switch n := rnd.IntN(10); {
	case n < 6:
		return []op{put(keys[rnd.IntN(len(keys))], fmt.Sprintf("v%d", rnd.Int()))}
	case n < 8 && len(existing) > 0:
		return []op{del(existing[rnd.IntN(len(existing))])}
	default:
		var ops []op
		for _, i := range rnd.Perm(len(keys))[:2+rnd.IntN(4)] {
			if rnd.IntN(4) == 0 {
				ops = append(ops, del(keys[i]))
			} else {
				ops = append(ops, put(keys[i], fmt.Sprintf("txn-%d-value-padding", rnd.Int())))
			}
		}
		return ops
	}
}

// runRandom drives random writes, notified one revision or several at a
// time, while watchers of every kind come and go, stall and resume, request
// progress and get periodic progress; with compact, the store is compacted
// under them. Then every stream is checked against the model.
func runRandom(t *testing.T, seed uint64, compact bool) {
	rnd := rand.New(rand.NewPCG(seed, seed))
	e := newEnv(t, Config{EventQueueSize: 8, WatcherBufferSize: 2, MaxResponseBytes: 200})
	for range 30 {
		if ops := randomOps(e, rnd); len(ops) > 0 {
			if r, ok := e.store.apply(ops...); ok {
				if err := e.hub.Notify([]Revision{r}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	var ws []watched
	for range 12 {
		ws = append(ws, randomWatch(t, e, rnd))
	}
	var batch []Revision
	for step := range 600 {
		if r, ok := e.store.apply(randomOps(e, rnd)...); ok {
			batch = append(batch, r)
		}
		if len(batch) > 0 && rnd.IntN(3) > 0 { // sometimes several revisions per Notify
			if err := e.hub.Notify(batch); err != nil {
				t.Fatalf("step %d: Notify: %v", step, err)
			}
			batch = nil
		}
		w := ws[rnd.IntN(len(ws))]
		switch rnd.IntN(20) {
		case 0:
			w.rec.pause()
		case 1, 2:
			w.rec.unpause()
		case 3:
			w.rec.w.RequestProgress()
		case 4:
			e.hub.progressTick()
		case 5:
			if len(ws) < 24 {
				ws = append(ws, randomWatch(t, e, rnd))
			}
		case 6:
			if compact && len(batch) == 0 {
				e.store.Compact(e.store.Rev() - 40)
			}
		}
	}
	if len(batch) > 0 {
		if err := e.hub.Notify(batch); err != nil {
			t.Fatal(err)
		}
	}
	final := e.store.Rev()
	model := e.store.model()
	canceled := 0
	for i, w := range ws {
		w.rec.unpause()
		resps, closed := w.rec.syncTo(t, final)
		if closed {
			canceled++
			if !errors.Is(w.rec.w.Err(), ErrCompacted) {
				t.Fatalf("watcher %d ended with %v; only compaction may end it", i, w.rec.w.Err())
			}
		}
		if err := checkAll(model, w.spec, resps, final); err != nil {
			t.Errorf("watcher %d (%+v): %v\nstream: %s", i, w.spec, err, fmtResps(resps))
		}
	}
	st := e.hub.Stats()
	t.Logf("seed %d: %d revisions, %d watchers (%d canceled by compaction), %d overflows, %d compacted",
		seed, final, len(ws), canceled, st.Overflows, st.Compacted)
	if st.Overflows == 0 {
		t.Errorf("no watcher ever overflowed: the slow path went untested")
	}
}

// TestGuarantees checks ordered, unique, reliable, atomic and bookmarkable
// on recorded streams of random histories with slow readers, tiny buffers,
// tiny History chunks and fragmenting responses.
func TestGuarantees(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { runRandom(t, seed, false) })
	}
}

// TestGuaranteesWithCompaction is TestGuarantees with the store compacted
// under the watchers: a watcher that needs a compacted revision must end
// with an explicit cancel carrying the compact revision, its stream exact up
// to then.
func TestGuaranteesWithCompaction(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { runRandom(t, 100+seed, true) })
	}
}

// TestResumable starts a watcher at every revision of a history, compacted
// at its beginning: each stream is exactly the model's suffix; starting at
// or below the compact revision ends with the compact revision.
func TestResumable(t *testing.T) {
	e := newEnv(t, Config{EventQueueSize: 5, WatcherBufferSize: 3})
	rnd := rand.New(rand.NewPCG(7, 7))
	for range 80 {
		if r, ok := e.store.apply(randomOps(e, rnd)...); ok {
			if err := e.hub.Notify([]Revision{r}); err != nil {
				t.Fatal(err)
			}
		}
	}
	const compactAt = 10
	e.store.Compact(compactAt)
	final := e.store.Rev()
	model := e.store.model()
	for start := int64(1); start <= final+1; start++ {
		for _, kind := range []struct {
			key  string
			opts []Option
		}{{"", []Option{WithPrefix()}}, {"k3", nil}, {"p/", []Option{WithPrefix(), WithPrevKV()}}} {
			opts := append([]Option{WithRev(start)}, kind.opts...)
			w := e.watch(kind.key, opts...)
			rec := record(t, w)
			resps, closed := rec.syncTo(t, final)
			if start <= compactAt {
				if !closed {
					t.Fatalf("start %d <= compact %d: watcher not canceled", start, compactAt)
				}
				last := resps[len(resps)-1]
				if rev, ok := CompactRevision(w.Err()); !ok || rev != compactAt || !last.Canceled || last.CompactRevision != compactAt {
					t.Fatalf("start %d: want cancel at compact revision %d; err %v, last %s", start, compactAt, w.Err(), fmtResp(last))
				}
				continue
			}
			if err := checkAll(model, specOf(t, kind.key, start, opts...), resps, final); err != nil {
				t.Fatalf("start %d %q: %v", start, kind.key, err)
			}
			w.Close()
			rec.waitClosed(t)
		}
	}
}

// TestBookmarks: progress notifications, requested and periodic, on synced
// and catching-up watchers, never overtake the events they vouch for.
func TestBookmarks(t *testing.T) {
	e := newEnv(t, Config{WatcherBufferSize: 2, EventQueueSize: 3})
	e.puts(20, "a", "b")
	ctx := context.Background()
	w, err := e.hub.Watch(ctx, []byte("a"), WithRev(1), WithProgressNotify())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rec := record(t, w)
	rec.pause()
	w.RequestProgress() // owed while it catches up
	e.puts(20, "a", "b")
	e.hub.progressTick() // skipped while it catches up
	rec.unpause()
	resps, _ := rec.syncTo(t, e.store.Rev())
	waitSynced(t, e.hub)
	e.hub.progressTick()
	resps = rec.waitFor(t, "a periodic progress", func(rs []Response, _ bool) bool {
		return len(rs) > len(resps) && rs[len(rs)-1].ProgressNotify
	})
	if err := checkAll(e.store.model(), specOf(t, "a", 1), resps, e.store.Rev()); err != nil {
		t.Fatalf("%v\n%s", err, fmtResps(resps))
	}
	progress := 0
	for _, r := range resps {
		if r.ProgressNotify {
			progress++
		}
	}
	// The two requests may be answered together (both owed while it caught
	// up) or apart; with the periodic one, at least two.
	if progress < 2 {
		t.Fatalf("want the requested and the periodic progress notifications, got %d: %s", progress, fmtResps(resps))
	}
}

// TestConcurrentWatchAndNotify: watchers opened from past revisions while
// another goroutine keeps notifying hand over from History to the live path
// with no gap and no duplicate, whatever the interleaving; some are closed
// midway, which must not disturb the others.
func TestConcurrentWatchAndNotify(t *testing.T) {
	e := newEnv(t, Config{EventQueueSize: 4, WatcherBufferSize: 2})
	e.puts(20, "a", "b", "c")
	const (
		minWrites = 2000
		watchers  = 150
	)
	var opened atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		rnd := rand.New(rand.NewPCG(3, 3))
		// Keep writing until every watcher is open, so all open concurrently.
		for i := 0; i < minWrites || opened.Load() < watchers; i++ {
			r, _ := e.store.apply(put([]string{"a", "b", "c"}[rnd.IntN(3)], "v"))
			if err := e.hub.Notify([]Revision{r}); err != nil {
				t.Error(err)
				return
			}
			runtime.Gosched()
		}
	}()
	rnd := rand.New(rand.NewPCG(4, 4))
	var ws []watched
	for i := range watchers {
		start := 1 + rnd.Int64N(e.store.Rev())
		key := []string{"a", "b"}[rnd.IntN(2)]
		w := e.watch(key, WithRev(start))
		rec := record(t, w)
		opened.Add(1)
		if i%5 == 4 {
			w.Close()
		} else {
			ws = append(ws, watched{spec: specOf(t, key, start), rec: rec})
		}
		runtime.Gosched()
	}
	<-done
	final := e.store.Rev()
	model := e.store.model()
	for i, w := range ws {
		resps, _ := w.rec.syncTo(t, final)
		if err := checkAll(model, w.spec, resps, final); err != nil {
			t.Fatalf("watcher %d (start %d): %v", i, w.start, err)
		}
	}
	t.Logf("%d watchers opened during %d writes; %+v", watchers, final, e.hub.Stats())
}
