package main

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/examples/internal/kvflag"
	"github.com/cairn-db/cairn/internal/servercluster"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/resolver/dns.(*dnsResolver).watcher"),
	)
}

func TestResumeRemote(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{})
	// One member: the test compacts and then expects the resumed watch to
	// see the compaction, which a member that has not applied it yet (the
	// balancer may pick another) would not (as with etcd).
	db, err := kvflag.Open(strings.Join(c.Endpoints(c.Names()[1]), ","), "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	resume(t, db)
}

func TestResumeEmbedded(t *testing.T) {
	db, err := kvflag.Open("", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	resume(t, db)
}

// running is a Mirror running in the background.
type running struct {
	m       *Mirror
	changes chan Change
	stop    func()
}

func start(t *testing.T, db cairn.KV, stateFile string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{changes: make(chan Change, 100)}
	r.m = &Mirror{KV: db, Prefix: "cfg/", State: stateFile, Apply: func(c Change) { r.changes <- c }}
	done := make(chan error, 1)
	go func() { done <- r.m.Run(ctx) }()
	r.stop = func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("mirror: %v", err)
		}
	}
	t.Cleanup(cancel)
	return r
}

func (r *running) next(t *testing.T) Change {
	t.Helper()
	select {
	case c := <-r.changes:
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("no change within 20s")
		return Change{}
	}
}

// resume stops the mirror, changes keys, restarts it, and checks that it
// applied exactly the missed changes, in order; then does it again with
// the resume point compacted away, which forces a reload.
func resume(t *testing.T, db cairn.KV) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stateFile := filepath.Join(t.TempDir(), "state.json")
	put := func(k, v string) int64 {
		t.Helper()
		r, err := db.Put(ctx, k, v)
		if err != nil {
			t.Fatal(err)
		}
		return r.Header.Revision
	}
	del := func(k string) int64 {
		t.Helper()
		r, err := db.Delete(ctx, k)
		if err != nil || r.Deleted != 1 {
			t.Fatalf("delete %s: %v %v", k, r, err)
		}
		return r.Header.Revision
	}
	expect := func(r *running, want ...Change) {
		t.Helper()
		for _, w := range want {
			if got := r.next(t); got != w {
				t.Fatalf("change %v, want %v", got, w)
			}
		}
	}
	snapshot := func(r *running, want map[string]string) {
		t.Helper()
		if got, _ := r.m.Snapshot(); !maps.Equal(got, want) {
			t.Fatalf("copy %v, want %v", got, want)
		}
	}

	// First start: a full read, then live changes.
	put("cfg/a", "1")
	rev := put("cfg/b", "2")
	put("other/x", "0")
	m := start(t, db, stateFile)
	if c := m.next(t); c.Kind != Reload || c.Reason != "first start" || c.Rev <= rev {
		t.Fatalf("first change %v, want a reload", c)
	}
	snapshot(m, map[string]string{"cfg/a": "1", "cfg/b": "2"})
	expect(m, Change{Kind: Put, Key: "cfg/c", Value: "3", Rev: put("cfg/c", "3")})
	m.stop()

	// Changes while it is stopped, and a restart: exactly those, in order.
	want := []Change{
		{Kind: Put, Key: "cfg/a", Value: "10", Rev: put("cfg/a", "10")},
		{Kind: Delete, Key: "cfg/b", Rev: del("cfg/b")},
	}
	put("other/y", "0")
	want = append(want,
		Change{Kind: Put, Key: "cfg/d", Value: "4", Rev: put("cfg/d", "4")},
		Change{Kind: Put, Key: "cfg/a", Value: "11", Rev: put("cfg/a", "11")})
	m = start(t, db, stateFile)
	expect(m, want...)
	// Nothing else came before the next live change.
	expect(m, Change{Kind: Put, Key: "cfg/z", Value: "end", Rev: put("cfg/z", "end")})
	snapshot(m, map[string]string{"cfg/a": "11", "cfg/c": "3", "cfg/d": "4", "cfg/z": "end"})
	m.stop()

	// Changes while it is stopped, then a compaction past its resume point:
	// the restart reads everything again and says why.
	put("cfg/e", "5")
	del("cfg/c")
	comp := put("other/z", "0")
	if _, err := db.Compact(ctx, comp); err != nil {
		t.Fatal(err)
	}
	m = start(t, db, stateFile)
	c := m.next(t)
	if c.Kind != Reload || !strings.Contains(c.Reason, "compacted") || c.Rev < comp {
		t.Fatalf("change after a compacted resume point: %v, want a reload", c)
	}
	t.Logf("restart after compaction: %v", c)
	snapshot(m, map[string]string{"cfg/a": "11", "cfg/d": "4", "cfg/z": "end", "cfg/e": "5"})
	expect(m, Change{Kind: Put, Key: "cfg/f", Value: "6", Rev: put("cfg/f", "6")})
	m.stop()

	// The state file holds the copy: a fresh Mirror starts from it.
	st, err := load(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(maps.Keys(st.Keys))
	if !slices.Equal(keys, []string{"cfg/a", "cfg/d", "cfg/e", "cfg/f", "cfg/z"}) {
		t.Fatalf("state file keys %v", keys)
	}
}
