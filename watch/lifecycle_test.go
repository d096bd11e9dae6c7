package watch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// TestMaxWatchers: Watch beyond max_watchers fails with ErrTooManyWatchers;
// closing one frees its place.
func TestMaxWatchers(t *testing.T) {
	e := newEnv(t, Config{MaxWatchers: 3})
	var ws []*Watcher
	for i := range 3 {
		ws = append(ws, e.watch(fmt.Sprint("k", i)))
	}
	if _, err := e.hub.Watch(context.Background(), []byte("k")); !errors.Is(err, ErrTooManyWatchers) {
		t.Fatalf("4th watcher: %v, want ErrTooManyWatchers", err)
	}
	ws[0].Close()
	e.watch("k")
}

// TestContextEndRemovesWatcher: when a watcher's context ends, it leaves the
// hub, its channel is closed and Err says why — synced or catching up.
func TestContextEndRemovesWatcher(t *testing.T) {
	e := newEnv(t, Config{WatcherBufferSize: 1})
	e.puts(10, "k")
	for _, start := range []int64{0, 1} { // synced; catching up, blocked on its reader
		ctx, cancel := context.WithCancel(context.Background())
		w, err := e.hub.Watch(ctx, []byte("k"), WithRev(start))
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		drain(t, w)
		if err := w.Err(); !errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed) {
			t.Fatalf("start %d: Err() = %v, want context.Canceled", start, err)
		}
	}
	if st := e.hub.Stats(); st.Watchers != 0 || st.Synced != 0 {
		t.Fatalf("watchers left after their contexts ended: %+v", st)
	}
	e.commit(put("k", "v")) // no watcher, nothing to send, nothing panics
}

// TestCloseIdempotent: Close twice, Close after the hub stopped, Close of a
// watcher blocked delivering its compaction cancel: none blocks or panics.
func TestCloseIdempotent(t *testing.T) {
	e := newEnv(t, Config{WatcherBufferSize: 1})
	w := e.watch("k")
	w.Close()
	w.Close()
	if !errors.Is(w.Err(), ErrClosed) || errors.Is(w.Err(), ErrStopped) {
		t.Fatalf("Err() = %v, want ErrClosed", w.Err())
	}
	drain(t, w)

	e.puts(5, "k")
	e.store.Compact(3)
	blocked := e.watch("k", WithRev(1)) // its cancel waits for a reader that never comes
	waitFor(t, "compaction cancel", func() bool { return e.hub.Stats().Compacted == 1 })
	blocked.Close()
	resps := drain(t, blocked)
	if _, ok := CompactRevision(blocked.Err()); !ok {
		t.Fatalf("Err() = %v after Close: the compaction happened first and must be kept", blocked.Err())
	}
	if len(resps) > 1 {
		t.Fatalf("got %s", fmtResps(resps))
	}
}

// TestStopEndsAll: Stop ends synced, catching-up and stalled watchers with
// ErrStopped (which is ErrClosed), closes their channels, waits for every
// goroutine; afterwards the hub refuses work.
func TestStopEndsAll(t *testing.T) {
	e := newEnv(t, Config{WatcherBufferSize: 2, ProgressIntervalMs: 1})
	e.puts(100, "a", "b")
	ws := []*Watcher{
		e.watch("a"),             // synced
		e.watch("a", WithRev(1)), // catching up, reader absent
		e.watch("", WithPrefix(), WithProgressNotify()), // will stall
	}
	e.puts(20, "a", "b")
	e.hub.Stop()
	for i, w := range ws {
		drain(t, w)
		if err := w.Err(); !errors.Is(err, ErrStopped) || !errors.Is(err, ErrClosed) {
			t.Fatalf("watcher %d: Err() = %v, want ErrStopped and ErrClosed", i, err)
		}
	}
	if _, err := e.hub.Watch(context.Background(), []byte("a")); !errors.Is(err, ErrStopped) {
		t.Fatalf("Watch after Stop: %v", err)
	}
	r, _ := e.store.apply(put("a", "late"))
	if err := e.hub.Notify([]Revision{r}); !errors.Is(err, ErrStopped) {
		t.Fatalf("Notify after Stop: %v", err)
	}
	if err := e.hub.Resync(r.Rev); !errors.Is(err, ErrStopped) {
		t.Fatalf("Resync after Stop: %v", err)
	}
	e.hub.Stop() // twice is fine
	if st := e.hub.Stats(); st.Watchers != 0 {
		t.Fatalf("watchers left: %+v", st)
	}
}

// TestPeriodicProgress: the hub's own ticker sends progress notifications to
// the synced watchers that asked, and to no other.
func TestPeriodicProgress(t *testing.T) {
	e := newEnv(t, Config{ProgressIntervalMs: 1})
	e.puts(3, "k")
	asked := record(t, e.watch("k", WithProgressNotify()))
	quiet := record(t, e.watch("k"))
	resps := asked.waitFor(t, "two periodic progress notifications", func(rs []Response, _ bool) bool { return len(rs) >= 2 })
	for _, r := range resps {
		if !r.ProgressNotify || r.Revision != 3 {
			t.Fatalf("got %s, want progress at 3", fmtResp(r))
		}
	}
	if rs, _ := quiet.snapshot(); len(rs) != 0 {
		t.Fatalf("a watcher that did not ask got %s", fmtResps(rs))
	}
}

// TestProgressOnFullBuffer: a requested progress notification that does not
// fit is owed, not dropped: the watcher leaves the live path and gets it,
// after its events, once it reads.
func TestProgressOnFullBuffer(t *testing.T) {
	e := newEnv(t, Config{WatcherBufferSize: 2})
	w := e.watch("k")
	e.puts(2, "k")
	w.RequestProgress()
	resps := drain2(t, w, 3)
	if !resps[2].ProgressNotify || resps[2].Revision != 2 {
		t.Fatalf("got %s, want 2 events then progress at 2", fmtResps(resps))
	}
}

// TestNotifyRejectsBadInput: revisions out of order or malformed events are
// refused whole, and change nothing.
func TestNotifyRejectsBadInput(t *testing.T) {
	e := newEnv(t, Config{})
	rec := record(t, e.watch("k"))
	e.puts(3, "k")
	ok := Revision{Rev: 4, Events: []*mvccpb.Event{{Kv: &mvccpb.KeyValue{Key: []byte("k"), ModRevision: 4}}}}
	for _, tc := range []struct {
		name string
		revs []Revision
		want error
	}{
		{"old revision", []Revision{{Rev: 3}}, ErrRevisionOrder},
		{"not increasing", []Revision{ok, {Rev: 4}}, ErrRevisionOrder},
		{"nil event", []Revision{ok, {Rev: 5, Events: []*mvccpb.Event{nil}}}, ErrBadEvent},
		{"nil kv", []Revision{ok, {Rev: 5, Events: []*mvccpb.Event{{}}}}, ErrBadEvent},
	} {
		if err := e.hub.Notify(tc.revs); !errors.Is(err, tc.want) {
			t.Errorf("%s: Notify = %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := e.hub.Resync(2); !errors.Is(err, ErrRevisionOrder) {
		t.Errorf("Resync backwards: %v", err)
	}
	if st := e.hub.Stats(); st.Rev != 3 {
		t.Fatalf("rejected calls moved the hub to %d", st.Rev)
	}
	if err := e.hub.Notify(nil); err != nil {
		t.Fatalf("Notify(nil): %v", err)
	}
	e.commit(put("k", "after"))
	resps, _ := rec.syncTo(t, 4)
	if err := checkAll(e.store.model(), specOf(t, "k", 1), resps, 4); err != nil {
		t.Fatal(err)
	}
}

// TestNotifyGapResyncsFromHistory: if Notify skips revisions (a state
// machine bug, or a restored snapshot), no watcher silently misses them:
// the synced ones re-read them from History.
func TestNotifyGapResyncsFromHistory(t *testing.T) {
	e := newEnv(t, Config{})
	rec := record(t, e.watch("", WithPrefix()))
	future := record(t, e.watch("a", WithRev(100)))
	e.puts(2, "a")
	e.store.apply(put("a", "skipped"))
	e.store.apply(put("b", "skipped"))
	r, _ := e.store.apply(put("a", "seen"))
	if err := e.hub.Notify([]Revision{r}); err != nil {
		t.Fatal(err)
	}
	resps, _ := rec.syncTo(t, r.Rev)
	if err := checkAll(e.store.model(), specOf(t, "", 1, WithPrefix()), resps, r.Rev); err != nil {
		t.Fatal(err)
	}
	if st := e.hub.Stats(); st.Resyncs != 1 {
		t.Fatalf("stats %+v: want one resync", st)
	}
	if rs, _ := future.snapshot(); len(rs) != 0 {
		t.Fatalf("a watcher starting at 100 got %s", fmtResps(rs))
	}
}

// TestResyncAfterSnapshot: after a snapshot install the store jumped to a
// revision whose history it does not hold; Resync cancels the watchers that
// needed it with the compact revision, and keeps the others.
func TestResyncAfterSnapshot(t *testing.T) {
	e := newEnv(t, Config{})
	behind := e.watch("a")
	ahead := record(t, e.watch("a", WithRev(60)))
	e.puts(3, "a")
	drain2(t, behind, 3)
	for range 50 {
		e.store.apply(put("a", "from the snapshot"))
	}
	e.store.Compact(e.store.Rev()) // the snapshot holds state, not history
	if err := e.hub.Resync(e.store.Rev()); err != nil {
		t.Fatal(err)
	}
	resps := drain(t, behind)
	if len(resps) != 1 || resps[0].CompactRevision != 53 {
		t.Fatalf("behind: want a cancel at compact revision 53, got %s", fmtResps(resps))
	}
	e.puts(10, "a")
	got, _ := ahead.syncTo(t, e.store.Rev())
	if err := checkAll(e.store.model(), specOf(t, "a", 60), got, e.store.Rev()); err != nil {
		t.Fatal(err)
	}
}

// TestEmptyRevisions: revisions without events advance the hub.
func TestEmptyRevisions(t *testing.T) {
	e := newEnv(t, Config{})
	rec := record(t, e.watch("k"))
	if err := e.hub.Notify([]Revision{{Rev: 1}, {Rev: 2}}); err != nil {
		t.Fatal(err)
	}
	if resps, _ := rec.syncTo(t, 2); len(resps) != 1 || resps[0].Revision != 2 {
		t.Fatalf("got %s, want one progress at 2", fmtResps(resps))
	}
}

// TestManyWatchers: 10,000 watchers on one key and 10,000 on distinct keys
// all receive everything, quickly.
func TestManyWatchers(t *testing.T) {
	const n = 10_000
	for _, distinct := range []bool{false, true} {
		t.Run(fmt.Sprint("distinct=", distinct), func(t *testing.T) {
			e := newEnv(t, Config{MaxWatchers: n})
			ws := make([]*Watcher, n)
			for i := range ws {
				key := "k"
				if distinct {
					key = fmt.Sprint("k", i)
				}
				ws[i] = e.watch(key)
			}
			start := time.Now()
			const revs = 20
			for i := range revs {
				key := "k"
				if distinct {
					key = fmt.Sprint("k", i*(n/revs))
				}
				e.commit(put(key, "v"))
			}
			elapsed := time.Since(start)
			for i, w := range ws {
				want := revs
				if distinct {
					want = 0
					if i%(n/revs) == 0 {
						want = 1
					}
				}
				got := 0
				for len(w.C()) > 0 {
					got += len((<-w.C()).Events)
				}
				if got != want {
					t.Fatalf("watcher %d got %d events, want %d", i, got, want)
				}
			}
			if elapsed > 10*time.Second {
				t.Fatalf("%d revisions to %d watchers took %v", revs, n, elapsed)
			}
			t.Logf("%d revisions to %d watchers in %v", revs, n, elapsed)
		})
	}
}

// TestIndexMatchesBruteForce: the range index finds exactly the groups a
// linear scan finds, through random adds and removes.
func TestIndexMatchesBruteForce(t *testing.T) {
	x := newIndex()
	var ws []*Watcher
	key := func(i int) []byte { return []byte{byte('a' + i%7), byte('a' + i/7%7)} }
	r := rand.New(rand.NewPCG(1, 2))
	rnd := r.IntN
	for step := range 3000 {
		if len(ws) > 0 && rnd(3) == 0 {
			i := rnd(len(ws))
			x.remove(ws[i])
			ws = append(ws[:i], ws[i+1:]...)
		} else {
			var o watchOptions
			k := key(rnd(49))
			switch rnd(4) {
			case 0:
				o.prefix = true
				k = k[:1]
			case 1:
				o.fromKey = true
			case 2:
				o.end = append(key(rnd(49)), 'z')
				if string(o.end) <= string(k) {
					o.end = nil
				}
			}
			rng, err := newKeyRange(k, &o)
			if err != nil {
				t.Fatal(err)
			}
			w := &Watcher{rng: rng}
			x.add(w)
			ws = append(ws, w)
		}
		probe := key(rnd(49))
		got := map[*group]bool{}
		for _, g := range x.match(probe, nil) {
			if got[g] {
				t.Fatalf("step %d: group %q matched twice", step, g.rng.id())
			}
			got[g] = true
		}
		want := map[*group]bool{}
		for _, w := range ws {
			if w.rng.contains(probe) {
				want[w.grp] = true
			}
		}
		if len(got) != len(want) {
			t.Fatalf("step %d: key %q matched %d groups, want %d", step, probe, len(got), len(want))
		}
		for g := range want {
			if !got[g] {
				t.Fatalf("step %d: key %q missed group %q", step, probe, g.rng.id())
			}
		}
	}
}

// TestConfig: defaults, validation, and the [raft.watch] TOML section.
func TestConfig(t *testing.T) {
	d := DefaultConfig()
	if d.EventQueueSize != 1000 || d.WatcherBufferSize != 32 || d.MaxWatchers != 10000 ||
		d.ProgressIntervalMs != 600000 || d.MaxResponseBytes != 3<<19 {
		t.Fatalf("defaults: %+v", d)
	}
	bad := Config{WatcherBufferSize: -1}
	if err := bad.Validate(); !errors.Is(err, ErrInvalidConfig) || !stringsContain(err.Error(), "watcher_buffer_size") {
		t.Fatalf("Validate: %v", err)
	}
	if _, err := New(newStore(), bad); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New with a bad config: %v", err)
	}
	if _, err := New(nil, Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New without History: %v", err)
	}
	var file struct {
		Raft struct {
			Watch Config `toml:"watch"`
		} `toml:"raft"`
	}
	const doc = `
[raft.watch]
event_queue_size = 500
watcher_buffer_size = 16
max_watchers = 42
progress_interval_ms = 1000
max_response_bytes = 65536
`
	if _, err := toml.Decode(doc, &file); err != nil {
		t.Fatal(err)
	}
	c := file.Raft.Watch
	if c.EventQueueSize != 500 || c.WatcherBufferSize != 16 || c.MaxWatchers != 42 || c.ProgressIntervalMs != 1000 || c.MaxResponseBytes != 65536 {
		t.Fatalf("decoded %+v", c)
	}
}

// drain2 reads exactly n responses from w, bounded in time.
func drain2(t testing.TB, w *Watcher, n int) []Response {
	t.Helper()
	var out []Response
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for len(out) < n {
		select {
		case r, ok := <-w.C():
			if !ok {
				t.Fatalf("closed after %s (%v)", fmtResps(out), w.Err())
			}
			out = append(out, r)
		case <-timer.C:
			t.Fatalf("timed out after %s", fmtResps(out))
		}
	}
	return out
}

// waitFor polls cond, for states with nothing to wait on.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
