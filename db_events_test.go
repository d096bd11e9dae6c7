package cairn_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/internal/dbcluster"
	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/watch"
)

// nodeEvents records one node's engine events.
type nodeEvents struct {
	mu     sync.Mutex
	events []engine.Event
}

func (r *nodeEvents) Report(ev engine.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *nodeEvents) all() []engine.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *nodeEvents) wait(t *testing.T, what string, typ engine.EventType) engine.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, ev := range r.all() {
			if ev.Type == typ {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event (%s)", typ, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWatchEventsReported: a watcher nobody reads falls behind, and one
// that starts below the compact revision is canceled; both reach the
// node's Reporter through the engine, numbered with its own events.
func TestWatchEventsReported(t *testing.T) {
	var mu sync.Mutex
	reps := map[uint64]*nodeEvents{}
	c := dbcluster.New(t, dbcluster.Options{
		KV: kv.Options{Watch: watch.Config{WatcherBufferSize: 1}},
		Reporter: func(id uint64) engine.Reporter {
			mu.Lock()
			defer mu.Unlock()
			reps[id] = &nodeEvents{}
			return reps[id]
		},
	})
	id := c.Leader(t)
	db := c.DBs[id]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	w, err := db.Watch(ctx, "k/", cairn.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 5 {
		if _, err := db.Put(ctx, fmt.Sprintf("k/%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	behind := reps[id].wait(t, "an unread watcher with a one-response buffer", engine.EventWatcherFellBehind)
	if behind.Watcher != w.ID() || string(behind.Key) != "k/" || !bytes.Equal(behind.RangeEnd, []byte("k0")) || behind.Node != id {
		t.Errorf("fell behind: watcher %d key %q end %q node %d, want watcher %d on [k/, k0) of node %d",
			behind.Watcher, behind.Key, behind.RangeEnd, behind.Node, w.ID(), id)
	}

	rev := db.Revision()
	if _, err := db.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	old, err := db.Watch(ctx, "k/", cairn.WithPrefix(), cairn.WithRev(2))
	if err != nil {
		t.Fatal(err)
	}
	for range old.C() {
	}
	if !errors.Is(old.Err(), watch.ErrCompacted) {
		t.Fatalf("watch from a compacted revision ended with %v", old.Err())
	}
	canceled := reps[id].wait(t, "a watcher from a compacted revision", engine.EventWatcherCompacted)
	if canceled.Watcher != old.ID() || canceled.CompactRevision != rev {
		t.Errorf("compacted: watcher %d at %d, want watcher %d at %d", canceled.Watcher, canceled.CompactRevision, old.ID(), rev)
	}

	// One sequence: the engine's events and the watch hub's, numbered
	// together without a gap.
	for i, ev := range reps[id].all() {
		if ev.Seq != uint64(i+1) || ev.Node != id {
			t.Fatalf("event %d: Seq %d Node %d (%s), want Seq %d Node %d", i, ev.Seq, ev.Node, ev.Type, i+1, id)
		}
	}
}
