package watch

import (
	"context"
	"errors"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// TestKeyRanges: single key, range, prefix, from-key and every-key watches
// get exactly the events of their keys.
func TestKeyRanges(t *testing.T) {
	keys := []string{"a", "ab", "abc", "b", "b\xff", "c", "\xff", "\xff\xff", "zz"}
	for _, tc := range []struct {
		name string
		key  string
		opts []Option
		want []string
	}{
		{"single", "ab", nil, []string{"ab"}},
		{"range", "ab", []Option{WithRange([]byte("b\xff"))}, []string{"ab", "abc", "b"}},
		{"range end \\0 is from-key", "c", []Option{WithRange([]byte{0})}, []string{"c", "\xff", "\xff\xff", "zz"}},
		{"prefix", "ab", []Option{WithPrefix()}, []string{"ab", "abc"}},
		{"prefix of 0xff", "\xff", []Option{WithPrefix()}, []string{"\xff", "\xff\xff"}},
		{"prefix b", "b", []Option{WithPrefix()}, []string{"b", "b\xff"}},
		{"from-key", "b\xff", []Option{WithFromKey()}, []string{"b\xff", "c", "\xff", "\xff\xff", "zz"}},
		{"every key", "", []Option{WithPrefix()}, keys},
		{"every key, from-key", "", []Option{WithFromKey()}, keys},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			w := e.watch(tc.key, tc.opts...)
			rec := record(t, w)
			for _, k := range keys {
				e.commit(put(k, "v"))
			}
			resps, _ := rec.syncTo(t, e.store.Rev())
			var got []string
			for _, ev := range allEvents(resps) {
				got = append(got, string(ev.Kv.Key))
			}
			if !equalStrings(got, tc.want) {
				t.Fatalf("got keys %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFilters: WithFilterPut and WithFilterDelete leave those events out,
// on the live path and from history alike.
func TestFilters(t *testing.T) {
	e := newEnv(t, Config{})
	noPut := record(t, e.watch("k", WithFilterPut()))
	noDel := record(t, e.watch("k", WithFilterDelete()))
	both := record(t, e.watch("k", WithFilterPut(), WithFilterDelete(), WithProgressNotify()))
	for range 3 {
		e.commit(put("k", "v"))
		e.commit(del("k"))
	}
	final := e.store.Rev()
	past := record(t, e.watch("k", WithFilterPut(), WithRev(1)))
	check := func(name string, r *recorder, want mvccpb.Event_EventType, n int) {
		t.Helper()
		resps, _ := r.syncTo(t, final)
		evs := allEvents(resps)
		if len(evs) != n {
			t.Fatalf("%s: got %d events, want %d: %s", name, len(evs), n, fmtResps(resps))
		}
		for _, ev := range evs {
			if ev.Type != want {
				t.Fatalf("%s: got a %v event", name, ev.Type)
			}
		}
	}
	check("no put", noPut, mvccpb.Event_DELETE, 3)
	check("no delete", noDel, mvccpb.Event_PUT, 3)
	check("no put, from history", past, mvccpb.Event_DELETE, 3)
	check("neither", both, mvccpb.Event_PUT, 0)
}

// TestPrevKV: WithPrevKV delivers the previous key-value; without it, the
// event is stripped of it — and the store's event is not modified.
func TestPrevKV(t *testing.T) {
	e := newEnv(t, Config{})
	with := record(t, e.watch("k", WithPrevKV()))
	without := record(t, e.watch("k"))
	e.commit(put("k", "1"))
	r2 := e.commit(put("k", "2"))
	e.commit(del("k"))
	final := e.store.Rev()
	for _, past := range []bool{false, true} {
		w, wo := with, without
		if past {
			w, wo = record(t, e.watch("k", WithPrevKV(), WithRev(1))), record(t, e.watch("k", WithRev(1)))
		}
		a, _ := w.syncTo(t, final)
		b, _ := wo.syncTo(t, final)
		ea, eb := allEvents(a), allEvents(b)
		if len(ea) != 3 || len(eb) != 3 {
			t.Fatalf("past=%v: got %d and %d events, want 3", past, len(ea), len(eb))
		}
		if ea[0].PrevKv != nil || string(ea[1].PrevKv.GetValue()) != "1" || string(ea[2].PrevKv.GetValue()) != "2" {
			t.Fatalf("past=%v: with prev_kv: %v", past, ea)
		}
		for _, ev := range eb {
			if ev.PrevKv != nil {
				t.Fatalf("past=%v: without prev_kv, got %v", past, ev)
			}
		}
	}
	if r2.Events[0].PrevKv == nil {
		t.Fatal("stripping prev_kv modified the store's event")
	}
}

// TestFragment: with a tiny MaxResponseBytes, a revision larger than it is
// split into flagged fragments for a watcher that asked, and sent whole to
// one that did not; several revisions notified together are cut only at
// revision boundaries.
func TestFragment(t *testing.T) {
	const maxBytes = 200
	e := newEnv(t, Config{MaxResponseBytes: maxBytes})
	frag := record(t, e.watch("", WithPrefix(), WithFragment()))
	whole := record(t, e.watch("", WithPrefix()))
	pad := "value-padding-value-padding-value-padding"
	big, _ := e.store.apply(put("a", pad), put("b", pad), put("c", pad), put("d", pad), put("e", pad))
	var small []Revision
	for _, k := range []string{"f", "g", "h", "i"} {
		r, _ := e.store.apply(put(k, pad))
		small = append(small, r)
	}
	if err := e.hub.Notify(append([]Revision{big}, small...)); err != nil {
		t.Fatal(err)
	}
	final := e.store.Rev()
	model := e.store.model()
	for _, tc := range []struct {
		name  string
		rec   *recorder
		frags bool
	}{{"fragment", frag, true}, {"whole", whole, false}} {
		resps, _ := tc.rec.syncTo(t, final)
		if err := checkAll(model, specOf(t, "", 1, WithPrefix()), resps, final); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		nfrag := 0
		for _, r := range resps {
			if r.Fragment {
				nfrag++
			}
			var size int
			revs := map[int64]bool{}
			for _, ev := range r.Events {
				size += eventSize(ev)
				revs[ev.Kv.ModRevision] = true
			}
			if len(revs) > 1 && size+responseOverhead > maxBytes {
				t.Fatalf("%s: response of %d bytes holds %d revisions: %s", tc.name, size+responseOverhead, len(revs), fmtResp(r))
			}
		}
		if tc.frags != (nfrag > 0) {
			t.Fatalf("%s: %d fragments: %s", tc.name, nfrag, fmtResps(resps))
		}
		if !tc.frags && len(resps[0].Events) != len(big.Events) {
			t.Fatalf("%s: the big revision was split: %s", tc.name, fmtResps(resps))
		}
	}
	// The same from history.
	past := record(t, e.watch("", WithPrefix(), WithFragment(), WithRev(1)))
	resps, _ := past.syncTo(t, final)
	if err := checkAll(model, specOf(t, "", 1, WithPrefix()), resps, final); err != nil || !resps[0].Fragment {
		t.Fatalf("from history: %v: %s", err, fmtResps(resps))
	}
}

// TestFragmentLargerThanBuffer: a revision with more fragments than the
// watcher's buffer holds cannot go through the live path whole; it is
// delivered, whole and in order, by the catch-up path.
func TestFragmentLargerThanBuffer(t *testing.T) {
	e := newEnv(t, Config{MaxResponseBytes: 100, WatcherBufferSize: 2})
	rec := record(t, e.watch("", WithPrefix(), WithFragment()))
	var ops []op
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		ops = append(ops, put(k, "some-value-long-enough-to-fill-a-fragment"))
	}
	e.commit(ops...)
	resps, _ := rec.syncTo(t, e.store.Rev())
	if err := checkAll(e.store.model(), specOf(t, "", 1, WithPrefix()), resps, e.store.Rev()); err != nil {
		t.Fatal(err)
	}
	if st := e.hub.Stats(); st.Overflows == 0 {
		t.Fatalf("expected the live path to hand the revision over: %+v", st)
	}
}

// TestWatchBadInput: bad arguments get an error naming the problem and open
// no watcher.
func TestWatchBadInput(t *testing.T) {
	e := newEnv(t, Config{})
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		key  string
		opts []Option
		want error
	}{
		{"empty key", context.Background(), "", nil, ErrEmptyKey},
		{"end before key", context.Background(), "b", []Option{WithRange([]byte("a"))}, ErrInvalidRange},
		{"end equals key", context.Background(), "b", []Option{WithRange([]byte("b"))}, ErrInvalidRange},
		{"prefix and range", context.Background(), "b", []Option{WithPrefix(), WithRange([]byte("c"))}, ErrInvalidRange},
		{"prefix and from-key", context.Background(), "b", []Option{WithPrefix(), WithFromKey()}, ErrInvalidRange},
		{"negative revision", context.Background(), "b", []Option{WithRev(-1)}, ErrInvalidRevision},
		{"context done", canceled, "b", nil, context.Canceled},
	} {
		w, err := e.hub.Watch(tc.ctx, []byte(tc.key), tc.opts...)
		if !errors.Is(err, tc.want) || w != nil {
			t.Errorf("%s: Watch = %v, %v; want %v", tc.name, w, err, tc.want)
		}
	}
	if n := e.hub.Stats().Watchers; n != 0 {
		t.Fatalf("%d watchers open after bad input", n)
	}
}

// TestKeyNotAliased: the hub copies the key; the caller may reuse its slice.
func TestKeyNotAliased(t *testing.T) {
	e := newEnv(t, Config{})
	key := []byte("k")
	w, err := e.hub.Watch(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	key[0] = 'x'
	rec := record(t, w)
	e.commit(put("k", "v"))
	if resps, _ := rec.syncTo(t, e.store.Rev()); len(allEvents(resps)) != 1 {
		t.Fatalf("got %s", fmtResps(resps))
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
