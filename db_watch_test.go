package cairn_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/watch"
)

// watchSpec is one watch: what it watches, with which options, from where.
type watchSpec struct {
	name            string
	key, end        string // the model's range: "" one key, "\x00" from key
	prefix, fromKey bool
	prevKV          bool
	noPut, noDelete bool
	progress        bool  // WithProgressNotify
	slow            bool  // the reader dawdles, so the watcher falls behind
	start           int64 // WithRev; 0 = from the next revision
}

func (s watchSpec) options(start int64) []cairn.OpOption {
	var o []cairn.OpOption
	switch {
	case s.prefix:
		o = append(o, cairn.WithPrefix())
	case s.fromKey:
		o = append(o, cairn.WithFromKey())
	case s.end != "":
		o = append(o, cairn.WithRange(s.end))
	}
	if start != 0 {
		o = append(o, cairn.WithRev(start))
	}
	if s.prevKV {
		o = append(o, cairn.WithPrevKV())
	}
	if s.noPut {
		o = append(o, cairn.WithFilterPut())
	}
	if s.noDelete {
		o = append(o, cairn.WithFilterDelete())
	}
	if s.progress {
		o = append(o, cairn.WithProgressNotify())
	}
	return o
}

// watchSegment is what one watcher received: a recorded history.
type watchSegment struct {
	start int64 // the first revision it was to deliver
	id    int64
	resps []watch.Response
	err   error
}

// last is the revision the segment is complete up to: the Revision of its
// last response that is not a fragment, or start-1.
func (g *watchSegment) last() int64 {
	for i := len(g.resps) - 1; i >= 0; i-- {
		if r := g.resps[i]; !r.Fragment && !r.Canceled {
			return r.Revision
		}
	}
	return g.start - 1
}

// watchRecorder runs one spec: a reader goroutine records every response,
// and the recording goes on in a new segment after a restart.
type watchRecorder struct {
	spec watchSpec
	mu   sync.Mutex
	segs []*watchSegment
	w    cairn.Watcher
	done chan struct{} // closed when the current segment's channel closes
	news chan struct{} // signalled on every response
}

func startRecorder(t *testing.T, ctx context.Context, db *cairn.DB, spec watchSpec, start int64, seed uint64) *watchRecorder {
	t.Helper()
	r := &watchRecorder{spec: spec, news: make(chan struct{}, 1)}
	r.resume(t, ctx, db, start, seed)
	return r
}

// resume starts a new segment from start (a revision) on db.
func (r *watchRecorder) resume(t *testing.T, ctx context.Context, db *cairn.DB, start int64, seed uint64) {
	t.Helper()
	w, err := db.Watch(ctx, r.spec.key, r.spec.options(start)...)
	if err != nil {
		t.Fatalf("watch %s from %d: %v", r.spec.name, start, err)
	}
	g := &watchSegment{start: start, id: w.ID()}
	done := make(chan struct{})
	r.mu.Lock()
	r.segs = append(r.segs, g)
	r.w, r.done = w, done
	r.mu.Unlock()
	slow := r.spec.slow
	go func() {
		defer close(done)
		rng := rand.New(rand.NewPCG(seed, 7))
		for resp := range w.C() {
			r.mu.Lock()
			g.resps = append(g.resps, resp)
			r.mu.Unlock()
			select {
			case r.news <- struct{}{}:
			default:
			}
			if slow && rng.IntN(4) == 0 {
				time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
			}
		}
		r.mu.Lock()
		g.err = w.Err()
		r.mu.Unlock()
	}()
}

// waitBookmark asks for progress until the watcher vouches, with a
// progress notification, for every revision up to rev.
func (r *watchRecorder) waitBookmark(t *testing.T, rev int64) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		r.mu.Lock()
		g := r.segs[len(r.segs)-1]
		ok := false
		for _, resp := range g.resps {
			if resp.ProgressNotify && resp.Revision >= rev {
				ok = true
			}
		}
		w := r.w
		r.mu.Unlock()
		if ok {
			return
		}
		w.RequestProgress()
		select {
		case <-r.news:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("watch %s: no progress notification at or after %d", r.spec.name, rev)
		}
	}
}

// stop closes the current watcher and waits for its reader.
func (r *watchRecorder) stop(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	w, done := r.w, r.done
	r.mu.Unlock()
	w.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("watch %s: channel not closed after Close", r.spec.name)
	}
}

// wait waits for the current segment to end by itself.
func (r *watchRecorder) wait(t *testing.T) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("watch %s: channel not closed", r.spec.name)
	}
}

// eventRev is an event's revision.
func eventRev(ev *mvccpb.Event) int64 { return ev.Kv.ModRevision }

// checkWatchSegment checks one recorded history against the model's events
// for revisions [g.start, to]; want lists them. It checks that the history
// is:
//   - ordered: events in revision order, responses' Revision never going
//     back;
//   - unique: no event twice;
//   - atomic: every revision's events in one response (no fragments were
//     asked for);
//   - reliable: exactly the model's events, none missing, none extra, each
//     equal (prev_kv included or stripped, filters applied);
//   - bookmarkable: when a response at Revision R arrives (a progress
//     notification or not), every event with revision <= R has arrived
//     and none arrives later.
func checkWatchSegment(t *testing.T, name string, g *watchSegment, want []*mvccpb.Event) {
	t.Helper()
	var (
		got      []*mvccpb.Event
		lastRev  int64 // the last response's Revision
		respOf   = map[int64]int{}
		seen     = map[string]bool{}
		canceled bool
	)
	for i, r := range g.resps {
		if canceled {
			t.Fatalf("%s: response %d after the cancel", name, i)
		}
		if r.WatchID != g.id {
			t.Fatalf("%s: response %d has watch id %d, want %d", name, i, r.WatchID, g.id)
		}
		if r.Fragment {
			t.Fatalf("%s: response %d is a fragment; none was asked for", name, i)
		}
		if r.Canceled {
			canceled = true
			continue
		}
		if r.Revision < lastRev {
			t.Fatalf("%s: response %d at revision %d after one at %d", name, i, r.Revision, lastRev)
		}
		for _, ev := range r.Events {
			rev := eventRev(ev)
			if rev < g.start {
				t.Fatalf("%s: event at %d before the start revision %d", name, rev, g.start)
			}
			if rev <= lastRev {
				t.Fatalf("%s: response %d has an event at %d after a response vouched for %d", name, i, rev, lastRev)
			}
			if rev > r.Revision {
				t.Fatalf("%s: response %d at revision %d has an event at %d", name, i, r.Revision, rev)
			}
			if n := len(got); n > 0 && eventRev(got[n-1]) > rev {
				t.Fatalf("%s: event at %d after one at %d", name, rev, eventRev(got[n-1]))
			}
			id := fmt.Sprintf("%d/%s/%q/%d", rev, ev.Type, ev.Kv.Key, ev.Kv.Version)
			if seen[id] {
				t.Fatalf("%s: event %s twice", name, id)
			}
			seen[id] = true
			if j, ok := respOf[rev]; ok && j != i {
				t.Fatalf("%s: revision %d split between responses %d and %d", name, rev, j, i)
			}
			respOf[rev] = i
			got = append(got, ev)
		}
		// Bookmark: everything up to r.Revision has arrived by now.
		n := 0
		for n < len(want) && eventRev(want[n]) <= r.Revision {
			n++
		}
		if len(got) != n {
			t.Fatalf("%s: response %d (progress %v) vouches for revision %d after %d events; the model has %d up to it",
				name, i, r.ProgressNotify, r.Revision, len(got), n)
		}
		lastRev = r.Revision
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, the model has %d", name, len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("%s: event %d:\ngot  %s\nwant %s", name, i, refText(got[i]), refText(want[i]))
		}
	}
}

// modelEvents is what spec's watcher must see of revisions [from, to].
func (s watchSpec) modelEvents(m *refModel, from, to int64) []*mvccpb.Event {
	end := s.end
	switch {
	case s.prefix:
		end = refPrefixEnd(s.key)
	case s.fromKey:
		end = "\x00"
	}
	return m.events(from, to, s.key, end, s.prevKV, s.noPut, s.noDelete)
}

// checkRecorder checks every segment of r, that each picks up right after
// the previous one, and that the last one reaches final.
func checkRecorder(t *testing.T, r *watchRecorder, m *refModel, final int64) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, g := range r.segs {
		name := fmt.Sprintf("watch %s segment %d (from %d)", r.spec.name, i, g.start)
		to := g.last()
		if i == len(r.segs)-1 && to < final {
			t.Fatalf("%s: complete up to %d only, want %d", name, to, final)
		}
		if i > 0 && g.start != r.segs[i-1].last()+1 {
			t.Fatalf("%s: starts at %d, the previous segment ended at %d", name, g.start, r.segs[i-1].last())
		}
		checkWatchSegment(t, name, g, r.spec.modelEvents(m, g.start, to))
	}
}

// writeSteps applies n random writes through the harness.
func (h *refHarness) writeSteps(n int) {
	for range n {
		h.step++
		switch x := h.rng.IntN(100); {
		case x < 40:
			h.doPut()
		case x < 55:
			h.doDelete()
		case x < 88:
			h.doTxn()
		case x < 94:
			h.doGrant()
		default:
			h.doRevoke()
		}
	}
}

// TestDBWatchGuarantees records the histories of many watchers — exact
// keys, prefixes, ranges, from-key; prev_kv; put and delete filters;
// periodic progress; fast and slow readers, with watcher buffers small
// enough that slow ones keep falling off the live path and catching up from
// history — while random writes (puts, deletes, txns, lease revokes) run,
// through a compaction and a restart, and checks each history against the
// model: ordered, unique, atomic, reliable, bookmarkable (progress requested
// at random points), and resumable (watchers started later at past
// revisions, and every watcher resumed after the restart from its last
// bookmark).
func TestDBWatchGuarantees(t *testing.T) {
	dir := t.TempDir()
	kvOpts := kv.Options{Watch: watch.Config{WatcherBufferSize: 2, EventQueueSize: 8, ProgressIntervalMs: 25}}
	db := startKVDB(t, dir, kvOpts)
	ctx := ctxT(t)
	h := newRefHarness(t, ctx, dir, db, 11, refHarnessOpts{})
	h.writeSteps(40)

	specs := []watchSpec{
		{name: "everything", key: "\x00", end: "\x00", fromKey: true, prevKV: true, start: 1},
		{name: "everything-slow", key: "\x00", end: "\x00", fromKey: true, slow: true, start: 1},
		{name: "prefix a", key: "a", prefix: true, prevKV: true},
		{name: "prefix a/ slow", key: "a/", prefix: true, slow: true, start: 5},
		{name: "range [b, d)", key: "b", end: "d", progress: true},
		{name: "key a/1", key: "a/1", prevKV: true, start: 3},
		{name: "key e\\xff slow", key: "e\xff", slow: true, start: 2},
		{name: "no puts", key: "\x00", end: "\x00", fromKey: true, noPut: true, prevKV: true, start: 10},
		{name: "no deletes slow", key: "b", prefix: true, noDelete: true, slow: true, progress: true, start: 1},
		{name: "from c", key: "c", fromKey: true, end: "\x00", prevKV: true, slow: true},
		{name: "future", key: "\x00", end: "\x00", fromKey: true, start: h.m.rev + 30},
	}
	var recs []*watchRecorder
	begin := func(spec watchSpec) *watchRecorder {
		start := spec.start
		if start == 0 {
			start = h.m.rev + 1
		}
		r := startRecorder(t, ctx, h.db, spec, start, uint64(len(recs)))
		recs = append(recs, r)
		return r
	}
	for _, s := range specs {
		begin(s)
	}
	for range 10 {
		h.writeSteps(20)
		recs[h.rng.IntN(len(recs))].w.RequestProgress()
	}

	// Compaction: once every watcher is past it, it costs them nothing.
	// Then watchers started at past revisions replay exactly the model's
	// suffix: from the compacted revision itself and later; one from below
	// it is told to resync.
	for _, r := range recs {
		r.waitBookmark(t, h.m.rev)
	}
	compactAt := h.m.rev - 25
	if _, err := h.db.Compact(ctx, compactAt); err != nil {
		t.Fatal(err)
	}
	h.m.Compact(compactAt)
	for i, rev := range []int64{compactAt, compactAt + 1, compactAt + 7, h.m.rev, h.m.rev + 1} {
		begin(watchSpec{name: fmt.Sprintf("resumed %d at %d", i, rev), key: "\x00", end: "\x00", fromKey: true, prevKV: i%2 == 0, slow: i == 1, start: rev})
		begin(watchSpec{name: fmt.Sprintf("resumed prefix b %d at %d", i, rev), key: "b", prefix: true, noDelete: i == 2, start: rev})
	}
	gone, err := h.db.Watch(ctx, "a", cairn.WithPrefix(), cairn.WithRev(compactAt-1))
	if err != nil {
		t.Fatal(err)
	}
	checkCompactedWatch(t, gone, compactAt)

	h.writeSteps(100)

	// A restart ends every watcher with ErrStopped; each resumes on the new
	// DB from the revision after the last one it was told about.
	if err := h.db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		r.wait(t)
		if err := r.segs[len(r.segs)-1].err; !errors.Is(err, watch.ErrStopped) {
			t.Fatalf("watch %s after Close: %v, want %v", r.spec.name, err, watch.ErrStopped)
		}
	}
	h.db = startKVDB(t, dir, kvOpts)
	for i, r := range recs {
		r.resume(t, ctx, h.db, r.segs[len(r.segs)-1].last()+1, uint64(100+i))
	}
	for range 5 {
		h.writeSteps(20)
		recs[h.rng.IntN(len(recs))].w.RequestProgress()
	}

	final := h.m.rev
	for _, r := range recs {
		r.waitBookmark(t, final)
		r.stop(t)
	}
	var events int
	for _, r := range recs {
		checkRecorder(t, r, h.m, final)
		for _, g := range r.segs {
			for _, resp := range g.resps {
				events += len(resp.Events)
			}
		}
	}
	t.Logf("%d watchers, %d revisions, %d events checked", len(recs), final, events)
}

// checkCompactedWatch checks that w, which starts below the compacted
// revision compactRev, ends with a response carrying Canceled and
// CompactRevision, and with an error that wraps ErrCompacted and tells
// compactRev.
func checkCompactedWatch(t *testing.T, w cairn.Watcher, compactRev int64) {
	t.Helper()
	defer w.Close()
	var last watch.Response
	n := 0
	timeout := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case r, ok := <-w.C():
			if !ok {
				done = true
				break
			}
			last = r
			n++
		case <-timeout:
			t.Fatalf("watcher from a compacted revision still open")
		}
	}
	if !last.Canceled || last.CompactRevision != compactRev {
		t.Fatalf("last of %d responses: %+v, want Canceled with CompactRevision %d", n, last, compactRev)
	}
	err := w.Err()
	if rev, ok := watch.CompactRevision(err); !errors.Is(err, watch.ErrCompacted) || !ok || rev != compactRev {
		t.Fatalf("watcher error %v (compact revision %d, %v), want %v at %d", err, rev, ok, watch.ErrCompacted, compactRev)
	}
}

// TestDBWatchFromCompactedRevision: a watch whose start revision was
// compacted away — an exact key, a prefix, a range, from-key, with and
// without prev_kv and filters — ends with one response carrying Canceled and
// CompactRevision, and Err wraps watch.ErrCompacted with the compact
// revision; from the compacted revision itself the watch replays normally.
// A watcher that fell behind (its reader stalled) when the compaction came
// gets the events it had not yet read up to the point history was lost,
// exactly, and then the same cancel: never silence.
func TestDBWatchFromCompactedRevision(t *testing.T) {
	dir := t.TempDir()
	db := startKVDB(t, dir, kv.Options{Watch: watch.Config{WatcherBufferSize: 1, EventQueueSize: 4}})
	ctx := ctxT(t)
	h := newRefHarness(t, ctx, dir, db, 5, refHarnessOpts{})
	h.writeSteps(30)

	// The stalled watcher: from revision 1, read nothing yet.
	stalled := watchSpec{name: "stalled", key: "\x00", end: "\x00", fromKey: true, prevKV: true}
	sw, err := db.Watch(ctx, stalled.key, stalled.options(1)...)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	h.writeSteps(60)

	compactAt := h.m.rev - 5
	if _, err := db.Compact(ctx, compactAt); err != nil {
		t.Fatal(err)
	}
	h.m.Compact(compactAt)

	for _, s := range []watchSpec{
		{name: "key", key: "a"},
		{name: "prefix", key: "a", prefix: true, prevKV: true},
		{name: "range", key: "b", end: "d", noPut: true},
		{name: "from key", key: "\x00", end: "\x00", fromKey: true, noDelete: true},
	} {
		for _, start := range []int64{1, compactAt - 1} {
			w, err := db.Watch(ctx, s.key, s.options(start)...)
			if err != nil {
				t.Fatal(err)
			}
			checkCompactedWatch(t, w, compactAt)
		}
		// From the compacted revision, the history is all there.
		r := startRecorder(t, ctx, db, s, compactAt, 1)
		r.waitBookmark(t, h.m.rev)
		r.stop(t)
		checkRecorder(t, r, h.m, h.m.rev)
	}

	// The stalled watcher now reads: a prefix of its history, exact, then
	// the cancel.
	g := &watchSegment{start: 1, id: sw.ID()}
	timeout := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case r, ok := <-sw.C():
			if !ok {
				done = true
				break
			}
			g.resps = append(g.resps, r)
		case <-timeout:
			t.Fatal("stalled watcher not canceled")
		}
	}
	if len(g.resps) == 0 {
		t.Fatal("stalled watcher: no response")
	}
	final := g.resps[len(g.resps)-1]
	if !final.Canceled || final.CompactRevision != compactAt {
		t.Fatalf("stalled watcher's last response %+v, want Canceled with CompactRevision %d", final, compactAt)
	}
	if rev, ok := watch.CompactRevision(sw.Err()); !errors.Is(sw.Err(), watch.ErrCompacted) || !ok || rev != compactAt {
		t.Fatalf("stalled watcher error %v, want %v at %d", sw.Err(), watch.ErrCompacted, compactAt)
	}
	upTo := g.last()
	if upTo+1 >= compactAt {
		t.Fatalf("stalled watcher was complete up to %d, yet canceled by the compaction at %d", upTo, compactAt)
	}
	checkWatchSegment(t, "stalled", g, stalled.modelEvents(h.m, 1, upTo))
	t.Logf("stalled watcher: %d responses up to revision %d, then canceled at %d", len(g.resps)-1, upTo, compactAt)
}

// TestDBStalledWatcherCatchesUpExactly: a watcher whose reader does not read
// while 100,000 puts from 64 concurrent writers go through a single-node
// DB, then reads, receives every event exactly once, in revision order, each
// equal to what was written (prev_kv included). The writes were never
// blocked by it: its buffer holds WatcherBufferSize (32) responses, so if
// the apply path waited for it the 100,000 writes could not complete and
// this test would time out; instead it is moved off the live path and
// catches up from stored history. A second watcher that reads all along
// sees the same sequence.
func TestDBStalledWatcherCatchesUpExactly(t *testing.T) {
	total := 100_000
	if testing.Short() {
		total = 10_000
	}
	const writers = 64
	db := open(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start, err := db.Put(ctx, "other", "x")
	if err != nil {
		t.Fatal(err)
	}
	from := start.Header.Revision + 1
	stalled, err := db.Watch(ctx, "s/", cairn.WithPrefix(), cairn.WithPrevKV(), cairn.WithRev(from))
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	live, err := db.Watch(ctx, "s/", cairn.WithPrefix(), cairn.WithRev(from))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	var liveEvents []*mvccpb.Event
	liveDone := make(chan struct{})
	go func() {
		defer close(liveDone)
		for r := range live.C() {
			liveEvents = append(liveEvents, r.Events...)
			if len(liveEvents) >= total {
				return
			}
		}
	}()

	// Each writer puts keys of its own, so that every revision's expected
	// key, value and previous value are known from the responses.
	type write struct{ key, value string }
	byRev := make([]write, total)
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += writers {
				k, v := fmt.Sprintf("s/%02d/%d", w, i%7), fmt.Sprint(i)
				resp, err := db.Put(ctx, k, v)
				if err == nil {
					idx := resp.Header.Revision - from
					if idx < 0 || idx >= int64(total) {
						err = fmt.Errorf("put %s at revision %d, outside [%d, %d)", k, resp.Header.Revision, from, from+int64(total))
					} else {
						mu.Lock()
						byRev[idx] = write{k, v}
						mu.Unlock()
					}
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
	// The writes finished although the reader never read: it was taken off
	// the live path (its buffer holds 32 responses) instead of holding them.
	if st := db.WatchStats(); st.Overflows == 0 || st.Unsynced == 0 {
		t.Fatalf("watch stats %+v: the stalled watcher was never moved off the live path", st)
	}

	// Now the stalled reader reads everything.
	prev := map[string]string{}
	next := from
	timeout := time.After(3 * time.Minute)
	for next < from+int64(total) {
		select {
		case r, ok := <-stalled.C():
			if !ok {
				t.Fatalf("stalled watcher ended at revision %d: %v", next, stalled.Err())
			}
			for _, ev := range r.Events {
				want := byRev[next-from]
				switch {
				case ev.Kv.ModRevision != next:
					t.Fatalf("event at revision %d, want %d (missing, duplicated or out of order)", ev.Kv.ModRevision, next)
				case ev.Type != mvccpb.PUT || string(ev.Kv.Key) != want.key || string(ev.Kv.Value) != want.value:
					t.Fatalf("event at %d: %s %q=%q, want put %q=%q", next, ev.Type, ev.Kv.Key, ev.Kv.Value, want.key, want.value)
				}
				p, had := prev[want.key]
				if had != (ev.PrevKv != nil) || (had && string(ev.PrevKv.Value) != p) {
					t.Fatalf("event at %d: prev kv %v, want %q (%v)", next, ev.PrevKv, p, had)
				}
				prev[want.key] = want.value
				next++
			}
		case <-timeout:
			t.Fatalf("stalled watcher caught up to %d of %d", next-from, total)
		}
	}
	// Nothing more: a bookmark at the last revision comes next.
	stalled.RequestProgress()
	select {
	case r := <-stalled.C():
		if !r.ProgressNotify || len(r.Events) != 0 || r.Revision != from+int64(total)-1 {
			t.Fatalf("after catching up: %+v, want a bookmark at %d", r, from+int64(total)-1)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no bookmark after catching up")
	}

	select {
	case <-liveDone:
	case <-time.After(time.Minute):
		t.Fatalf("live watcher got %d of %d events", len(liveEvents), total)
	}
	if len(liveEvents) != total {
		t.Fatalf("live watcher got %d events, want %d", len(liveEvents), total)
	}
	for i, ev := range liveEvents {
		if want := byRev[i]; ev.Kv.ModRevision != from+int64(i) || string(ev.Kv.Key) != want.key || string(ev.Kv.Value) != want.value {
			t.Fatalf("live watcher event %d: %v, want %q=%q at %d", i, ev, want.key, want.value, from+int64(i))
		}
	}
}

// rangeAll reads every key, serializable, at rev (0: current).
func rangeAll(t *testing.T, ctx context.Context, db *cairn.DB, rev int64) *pb.RangeResponse {
	t.Helper()
	resp, err := db.Get(ctx, "\x00", cairn.WithFromKey(), cairn.WithSerializable(), cairn.WithRev(rev))
	if err != nil {
		t.Fatalf("read everything at %d: %v", rev, err)
	}
	return resp
}
