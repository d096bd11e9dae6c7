package watch

import (
	"errors"
	"fmt"
	"sort"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// spec is what a watcher asked for: enough to compute, from the model, the
// exact stream it must receive.
type spec struct {
	rng   keyRange
	flags uint8
	start int64 // the first revision it must receive
}

func specOf(t testing.TB, key string, start int64, opts ...Option) spec {
	t.Helper()
	var o watchOptions
	for _, opt := range opts {
		opt(&o)
	}
	rng, err := newKeyRange([]byte(key), &o)
	if err != nil {
		t.Fatalf("spec %q: %v", key, err)
	}
	return spec{rng: rng, flags: o.flags, start: start}
}

// expected is the events the model holds for s with revisions up to upTo,
// as the watcher must receive them (filtered, PrevKv stripped unless asked).
func (s spec) expected(model []Revision, upTo int64) []*mvccpb.Event {
	var items []item
	for _, r := range model {
		if r.Rev < s.start || r.Rev > upTo {
			continue
		}
		for _, ev := range r.Events {
			if s.rng.contains(ev.Kv.Key) {
				items = append(items, item{rev: r.Rev, ev: ev})
			}
		}
	}
	var out []*mvccpb.Event
	for _, it := range selectEvents(items, s.flags) {
		out = append(out, it.ev)
	}
	return out
}

// checkAll runs every guarantee checker on one watcher's recorded stream.
// upTo is the revision the stream is known to be complete to (a progress
// notification at it was read), or, for a stream canceled by compaction,
// anything: then it must be exact up to the revision its responses vouch for.
func checkAll(model []Revision, s spec, resps []Response, upTo int64) error {
	return errors.Join(
		checkOrdered(resps),
		checkUnique(resps),
		checkReliable(model, s, resps, upTo),
		checkAtomic(resps),
		checkBookmarks(model, s, resps),
	)
}

// checkOrdered: events arrive in revision order; headers never go back.
func checkOrdered(resps []Response) error {
	var prevEv, prevHdr int64
	for i, r := range resps {
		if !r.Canceled && r.Revision < prevHdr {
			return fmt.Errorf("ordered: response %d has revision %d after %d", i, r.Revision, prevHdr)
		}
		prevHdr = max(prevHdr, r.Revision)
		for _, ev := range r.Events {
			if rev := ev.Kv.ModRevision; rev < prevEv {
				return fmt.Errorf("ordered: response %d: event %s after revision %d", i, fmtEvent(ev), prevEv)
			} else {
				prevEv = rev
			}
		}
	}
	return nil
}

// checkUnique: no (revision, key) is delivered twice.
func checkUnique(resps []Response) error {
	type id struct {
		rev int64
		key string
	}
	seen := map[id]int{}
	for i, r := range resps {
		for _, ev := range r.Events {
			k := id{ev.Kv.ModRevision, string(ev.Kv.Key)}
			if j, dup := seen[k]; dup {
				return fmt.Errorf("unique: %s delivered in responses %d and %d", fmtEvent(ev), j, i)
			}
			seen[k] = i
		}
	}
	return nil
}

// checkReliable: the stream's events are exactly the model's for the watch,
// from its start revision to upTo — or, if the stream ended in a compaction
// cancel, exactly the model's up to the last revision it vouched for, and
// the cancel was due (the next revision it needed was compacted).
func checkReliable(model []Revision, s spec, resps []Response, upTo int64) error {
	if n := len(resps); n > 0 && resps[n-1].Canceled {
		last := resps[n-1]
		if last.CompactRevision == 0 {
			return fmt.Errorf("reliable: canceled without a compact revision: %q", last.CancelReason)
		}
		through := s.start - 1
		for _, r := range resps[:n-1] {
			if !r.Fragment {
				through = max(through, r.Revision)
			}
		}
		if through >= last.CompactRevision {
			return fmt.Errorf("reliable: canceled at compact revision %d, but complete through %d: it needed nothing compacted", last.CompactRevision, through)
		}
		upTo = through
	}
	got, want := allEvents(resps), s.expected(model, upTo)
	for i := range min(len(got), len(want)) {
		if !proto.Equal(got[i], want[i]) {
			return fmt.Errorf("reliable: event %d is %s (prev_kv %v), want %s (prev_kv %v)",
				i, fmtEvent(got[i]), got[i].PrevKv != nil, fmtEvent(want[i]), want[i].PrevKv != nil)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("reliable: got %d events, want %d (start %d, up to %d): got %s", len(got), len(want), s.start, upTo, fmtResps(resps))
	}
	return nil
}

// checkAtomic: a revision's events are in one response, unless they are
// split into consecutive fragments: every part but the last flagged
// Fragment, each holding that revision alone.
func checkAtomic(resps []Response) error {
	lastSeen := map[int64]int{}
	for i, r := range resps {
		var revs []int64
		for _, ev := range r.Events {
			if rev := ev.Kv.ModRevision; len(revs) == 0 || revs[len(revs)-1] != rev {
				revs = append(revs, rev)
			}
		}
		if r.Fragment && len(revs) != 1 {
			return fmt.Errorf("atomic: fragment %d holds revisions %v", i, revs)
		}
		for _, rev := range revs {
			if j, ok := lastSeen[rev]; ok && (j != i-1 || !resps[j].Fragment) {
				return fmt.Errorf("atomic: revision %d split over responses %d and %d without fragments", rev, j, i)
			}
			lastSeen[rev] = i
		}
		if r.Fragment {
			if i+1 == len(resps) || len(resps[i+1].Events) == 0 || resps[i+1].Events[0].Kv.ModRevision != revs[0] {
				return fmt.Errorf("atomic: fragment %d of revision %d not continued", i, revs[0])
			}
		}
	}
	return nil
}

// checkBookmarks: once a progress notification at R has been read (or any
// complete response with header R), every event of the watch with revision
// <= R has been read, and none arrives later.
func checkBookmarks(model []Revision, s spec, resps []Response) error {
	var top int64
	for _, r := range resps {
		top = max(top, r.Revision)
	}
	want := revsOf(s.expected(model, top))
	got := revsOf(allEvents(resps))
	// sufMin[i]: the lowest event revision in resps[i:].
	sufMin := make([]int64, len(resps)+1)
	sufMin[len(resps)] = 1<<63 - 1
	for i := len(resps) - 1; i >= 0; i-- {
		sufMin[i] = sufMin[i+1]
		for _, ev := range resps[i].Events {
			sufMin[i] = min(sufMin[i], ev.Kv.ModRevision)
		}
	}
	for i, r := range resps {
		if r.Canceled || r.Fragment || (!r.ProgressNotify && len(r.Events) == 0) {
			continue
		}
		R := r.Revision
		if sufMin[i+1] <= R {
			return fmt.Errorf("bookmarkable: response %d vouches for revision %d, but revision %d arrives later", i, R, sufMin[i+1])
		}
		if g, w := countUpTo(got, R), countUpTo(want, R); g != w {
			return fmt.Errorf("bookmarkable: response %d vouches for revision %d with %d events delivered, want %d", i, R, g, w)
		}
	}
	return nil
}

func revsOf(evs []*mvccpb.Event) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Kv.ModRevision
	}
	return out
}

// countUpTo counts the revisions <= r in sorted revs.
func countUpTo(revs []int64, r int64) int {
	return sort.Search(len(revs), func(i int) bool { return revs[i] > r })
}

// TestCheckersCatchBrokenStreams makes sure each checker fails on the
// violation it exists for, so a green run means something.
func TestCheckersCatchBrokenStreams(t *testing.T) {
	s := newStore()
	r1, _ := s.apply(put("a", "1"))
	r2, _ := s.apply(put("a", "2"), put("b", "2"))
	r3, _ := s.apply(put("a", "3"))
	model := s.model()
	sp := specOf(t, "", 1, WithPrefix(), WithPrevKV())
	ev := func(r Revision, i int) *mvccpb.Event { return r.Events[i] }
	good := []Response{
		{Revision: 1, Events: []*mvccpb.Event{ev(r1, 0)}},
		{Revision: 2, Events: []*mvccpb.Event{ev(r2, 0)}, Fragment: true},
		{Revision: 2, Events: []*mvccpb.Event{ev(r2, 1)}},
		{Revision: 3, ProgressNotify: true},
	}
	good[3].Revision = 2
	good = append(good, Response{Revision: 3, Events: []*mvccpb.Event{ev(r3, 0)}})
	if err := checkAll(model, sp, good, 3); err != nil {
		t.Fatalf("a correct stream fails the checkers: %v", err)
	}
	for _, tc := range []struct {
		name  string
		check func([]Response) error
		resps []Response
	}{
		{"ordered", checkOrdered, []Response{good[4], good[0]}},
		{"unique", checkUnique, []Response{good[0], good[0]}},
		{"reliable: gap", func(rs []Response) error { return checkReliable(model, sp, rs, 3) }, []Response{good[0], good[4]}},
		{"atomic: split", checkAtomic, []Response{{Events: good[1].Events}, good[2]}},
		{"atomic: unfinished", checkAtomic, []Response{good[1]}},
		{"bookmark: late event", func(rs []Response) error { return checkBookmarks(model, sp, rs) },
			[]Response{good[0], {Revision: 3, ProgressNotify: true}, good[1], good[2], good[4]}},
		{"bookmark: missing event", func(rs []Response) error { return checkBookmarks(model, sp, rs) },
			[]Response{good[0], {Revision: 2, ProgressNotify: true}}},
	} {
		if err := tc.check(tc.resps); err == nil {
			t.Errorf("%s: checker accepted a broken stream %s", tc.name, fmtResps(tc.resps))
		}
	}
}
