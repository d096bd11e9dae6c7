package watch

import (
	"bytes"
	"slices"
	"sync"
	"testing"
	"time"
)

// observed records the hub's callbacks.
type observed struct {
	mu        sync.Mutex
	behind    []behindMsg
	compacted [][2]int64
}

func (o *observed) config(cfg Config) Config {
	cfg.OnFellBehind = func(id int64, key, end []byte) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.behind = append(o.behind, behindMsg{id, key, end})
	}
	cfg.OnCompacted = func(id, rev int64) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.compacted = append(o.compacted, [2]int64{id, rev})
	}
	return cfg
}

// TestObserverCallbacks: a watcher whose buffer overflows is reported once
// per move off the live path, with its range; one that starts below the
// compact revision is reported canceled, with the revision. Both counts
// match Stats.
func TestObserverCallbacks(t *testing.T) {
	var o observed
	e := newEnv(t, o.config(Config{WatcherBufferSize: 1}))
	prefix := e.watch("k/", WithPrefix())
	single := e.watch("k/1")
	from := e.watch("m", WithFromKey())
	e.puts(4, "k/1", "m") // two responses for each, with room for one

	o.mu.Lock()
	got := slices.Clone(o.behind)
	o.mu.Unlock()
	want := map[int64]behindMsg{
		prefix.ID(): {prefix.ID(), []byte("k/"), []byte("k0")},
		single.ID(): {single.ID(), []byte("k/1"), nil},
		from.ID():   {from.ID(), []byte("m"), []byte{0}},
	}
	if len(got) != len(want) || uint64(len(got)) != e.hub.Stats().Overflows {
		t.Fatalf("OnFellBehind calls %v, want one per watcher (%d), as many as Stats.Overflows (%d)", got, len(want), e.hub.Stats().Overflows)
	}
	for _, b := range got {
		w, ok := want[b.id]
		if !ok || !bytes.Equal(b.key, w.key) || !bytes.Equal(b.end, w.end) || (b.end == nil) != (w.end == nil) {
			t.Errorf("OnFellBehind(%d, %q, %q), want %v", b.id, b.key, b.end, w)
		}
	}

	// Another hub: the watchers above, catching up, would be canceled too.
	var o2 observed
	e = newEnv(t, o2.config(Config{}))
	e.puts(3, "k/1")
	e.store.Compact(e.store.Rev())
	old := e.watch("k/", WithPrefix(), WithRev(1))
	deadline := time.After(waitTimeout)
	for range old.C() {
		select {
		case <-deadline:
			t.Fatal("the watcher below the compact revision never ended")
		default:
		}
	}
	o2.mu.Lock()
	defer o2.mu.Unlock()
	if want := [][2]int64{{old.ID(), e.store.CompactRev()}}; !slices.Equal(o2.compacted, want) {
		t.Fatalf("OnCompacted calls %v, want %v", o2.compacted, want)
	}
	if n := e.hub.Stats().Compacted; n != 1 {
		t.Fatalf("Stats.Compacted = %d, want 1", n)
	}
}
