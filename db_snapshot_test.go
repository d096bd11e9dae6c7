package cairn_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/internal/dbcluster"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/mvcc"
	"github.com/cairn-db/cairn/watch"
)

// eventCounter is an engine.Reporter that counts each node's events.
type eventCounter struct {
	mu sync.Mutex
	n  map[engine.EventType]int
}

func (c *eventCounter) Report(e engine.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[e.Type]++
}

func (c *eventCounter) count(t engine.EventType) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[t]
}

// snapCluster is three DB nodes on an in-memory network, with the given
// snapshot policy and an event counter per node.
type snapCluster struct {
	*dbcluster.Cluster
	events map[uint64]*eventCounter
}

func newSnapCluster(t *testing.T, snap engine.SnapshotConfig, o kv.Options) *snapCluster {
	t.Helper()
	events := map[uint64]*eventCounter{}
	for id := uint64(1); id <= 3; id++ {
		events[id] = &eventCounter{n: map[engine.EventType]int{}}
	}
	c := dbcluster.New(t, dbcluster.Options{Seed: 3, Snapshot: snap, KV: o,
		Reporter: func(id uint64) engine.Reporter { return events[id] }})
	return &snapCluster{Cluster: c, events: events}
}

// waitRev waits until db has applied revision rev.
func waitRev(t *testing.T, ctx context.Context, db *cairn.DB, rev int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := db.Get(ctx, "\x00", cairn.WithFromKey(), cairn.WithSerializable(), cairn.WithCountOnly())
		if err == nil && resp.Header.Revision >= rev {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d did not reach revision %d: %v %v", db.Engine().ID(), rev, resp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLogCompacted waits until db's raft log starts after index: a node
// that stopped at index can then only catch up by snapshot.
func waitLogCompacted(t *testing.T, db *cairn.DB, index uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for db.Engine().Status().FirstIndex <= index+1 {
		if time.Now().After(deadline) {
			t.Fatalf("the log still starts at %d, at or before %d", db.Engine().Status().FirstIndex, index+1)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkSameAsModel compares db's data (serializable, now and at past
// revisions down to the compacted one), its compaction and its leases with
// the model.
func checkSameAsModel(t *testing.T, ctx context.Context, name string, db *cairn.DB, m *refModel) {
	t.Helper()
	for _, rev := range []int64{0, m.compact, m.compact + 1, (m.compact + m.rev) / 2, m.rev - 1} {
		want, errs := m.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev})
		got, err := db.Get(ctx, "\x00", cairn.WithFromKey(), cairn.WithSerializable(), cairn.WithRev(rev))
		if errs != nil || err != nil || !proto.Equal(got, want) {
			t.Fatalf("%s at revision %d:\ngot  %s (%v)\nwant %s (%v)", name, rev, refText(got), err, refText(want), errs)
		}
	}
	if m.compact > 1 {
		_, err := db.Get(ctx, "\x00", cairn.WithFromKey(), cairn.WithSerializable(), cairn.WithRev(m.compact-1))
		if !errors.Is(err, mvcc.ErrCompacted) {
			t.Fatalf("%s: read below the compacted revision %d: %v, want %v", name, m.compact, err, mvcc.ErrCompacted)
		}
	}
	ls, err := db.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, l := range ls.Leases {
		ids = append(ids, l.ID)
	}
	slices.Sort(ids)
	if want := slices.Sorted(maps.Keys(m.leases)); !slices.Equal(ids, want) {
		t.Fatalf("%s: leases %v, want %v", name, ids, want)
	}
	for id, ttl := range m.leases {
		got, err := db.TimeToLive(ctx, id, true)
		if err != nil {
			t.Fatalf("%s: time to live of lease %d: %v", name, id, err)
		}
		var keys, gotKeys []string
		for _, kv := range m.keysWithLease(id) {
			keys = append(keys, string(kv.Key))
		}
		for _, k := range got.Keys {
			gotKeys = append(gotKeys, string(k))
		}
		if got.GrantedTTL != ttl || !slices.Equal(gotKeys, keys) {
			t.Fatalf("%s: lease %d: granted %d keys %q, want %d %q", name, id, got.GrantedTTL, gotKeys, ttl, keys)
		}
	}
}

// TestDBFollowerCatchesUpBySnapshot: a follower is down while the cluster
// writes (puts, deletes, txns, lease grants and revokes), compacts its
// store and, with a snapshot every 100 entries and 10 kept behind it,
// compacts its raft log past the follower's last entry. Restarted, the
// follower can only catch up by snapshot, and does; then it has exactly the
// leader's data (every key now and at every non-compacted past revision,
// read serializably on each node, and equal to the model), the same
// compacted revision, the same leases with the same keys. A watcher started
// on it right after the restart, before the snapshot arrived, from an old
// revision the cluster has not compacted, and one started after the catch
// up, get exactly the model's events, as does a watcher on the leader; one
// from below the compacted revision is told to resync.
func TestDBFollowerCatchesUpBySnapshot(t *testing.T) {
	c := newSnapCluster(t, engine.SnapshotConfig{Threshold: 100, CatchUpMargin: 10}, kv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader := c.Leader(t)
	follower := leader%3 + 1
	h := newRefHarness(t, ctx, "", c.DBs[leader], 21, refHarnessOpts{})
	h.writeSteps(60)
	waitRev(t, ctx, c.DBs[follower], h.m.rev)
	downAt := c.DBs[follower].Engine().Status().LastIndex
	c.Stop(t, follower)

	// The cluster goes on without it until its log no longer holds the
	// follower's next entry, compacting the store on the way.
	var compactAt int64
	for i := 0; ; i++ {
		h.writeSteps(50)
		if i == 3 {
			compactAt = h.m.rev - 10
			if _, err := h.db.Compact(ctx, compactAt); err != nil {
				t.Fatal(err)
			}
			h.m.Compact(compactAt)
		}
		if st := c.DBs[leader].Engine().Status(); i >= 4 && st.FirstIndex > downAt+1 {
			break
		}
		if i > 40 {
			t.Fatalf("the leader's log still starts at %d, the follower stopped at %d", c.DBs[leader].Engine().Status().FirstIndex, downAt)
		}
	}
	watchFrom := compactAt + 3 // written while the follower was down
	all := watchSpec{name: "everything", key: "\x00", end: "\x00", fromKey: true, prevKV: true}
	prefix := watchSpec{name: "prefix b", key: "b", prefix: true}

	installed := c.events[follower].count(engine.EventSnapshotInstalled)
	c.Start(t, follower)
	early := startRecorder(t, ctx, c.DBs[follower], all, watchFrom, 1)
	c.Ready(t, follower)
	waitRev(t, ctx, c.DBs[follower], h.m.rev)
	if n := c.events[follower].count(engine.EventSnapshotInstalled); n == installed {
		t.Fatal("the follower caught up without installing a snapshot")
	}

	fdb, ldb := c.DBs[follower], c.DBs[leader]
	for _, rev := range []int64{0, compactAt, watchFrom, h.m.rev - 1} {
		if f, l := rangeAll(t, ctx, fdb, rev), rangeAll(t, ctx, ldb, rev); !proto.Equal(f, l) {
			t.Fatalf("at revision %d the follower has\n%s\nthe leader\n%s", rev, refText(f), refText(l))
		}
	}
	checkSameAsModel(t, ctx, "follower", fdb, h.m)
	checkSameAsModel(t, ctx, "leader", ldb, h.m)

	late := startRecorder(t, ctx, fdb, prefix, watchFrom, 2)
	onLeader := startRecorder(t, ctx, ldb, all, watchFrom, 3)
	gone, err := fdb.Watch(ctx, "b", cairn.WithPrefix(), cairn.WithRev(compactAt-1))
	if err != nil {
		t.Fatal(err)
	}
	checkCompactedWatch(t, gone, compactAt)

	// Writes go on, through the follower too; its watchers follow live.
	h.writeSteps(30)
	h.db = fdb
	h.writeSteps(30)
	waitRev(t, ctx, fdb, h.m.rev)
	for _, r := range []*watchRecorder{early, late, onLeader} {
		r.waitBookmark(t, h.m.rev)
		r.stop(t)
		checkRecorder(t, r, h.m, h.m.rev)
	}
	checkSameAsModel(t, ctx, "follower after more writes", fdb, h.m)
	t.Logf("follower stopped at index %d; the leader's log starts at %d; revision %d, compacted at %d, %d leases",
		downAt, ldb.Engine().Status().FirstIndex, h.m.rev, h.m.compact, len(h.m.leases))
}

// TestDBRestartKeepsEverything: after Close and Open on the same
// directory, a DB holds the same data now and at every non-compacted past
// revision, the same compacted revision (reads below it still fail), the
// same leases with their keys and TTLs, and history: a watcher from an old
// revision replays exactly what was written before the restart. The next
// write continues the revision sequence.
func TestDBRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)
	h := newRefHarness(t, ctx, dir, open(t, dir), 31, refHarnessOpts{})
	h.writeSteps(150)
	compactAt := h.m.rev - 30
	if _, err := h.db.Compact(ctx, compactAt); err != nil {
		t.Fatal(err)
	}
	h.m.Compact(compactAt)
	h.writeSteps(30)
	checkSameAsModel(t, ctx, "before the restart", h.db, h.m)
	for range 2 {
		h.restart()
		checkSameAsModel(t, ctx, "after a restart", h.db, h.m)
	}
	for _, from := range []int64{compactAt, compactAt + 10, h.m.rev} {
		r := startRecorder(t, ctx, h.db, watchSpec{name: "everything", key: "\x00", end: "\x00", fromKey: true, prevKV: true}, from, 1)
		r.waitBookmark(t, h.m.rev)
		r.stop(t)
		checkRecorder(t, r, h.m, h.m.rev)
	}
	// Leases still run on the restarted leader: a keep-alive renews.
	for id, ttl := range h.m.leases {
		ka, err := h.db.KeepAlive(ctx, id)
		for deadline := time.Now().Add(5 * time.Second); errors.Is(err, cairn.ErrNotLeader) && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond) // the lease clock starts once the node sees itself lead
			ka, err = h.db.KeepAlive(ctx, id)
		}
		if err != nil || ka.TTL != ttl {
			t.Fatalf("keep alive of lease %d after the restart: %v %v", id, ka, err)
		}
	}
	before := h.m.rev
	h.writeSteps(20)
	if h.m.rev == before {
		t.Fatal("no write after the restart created a revision")
	}
	checkSameAsModel(t, ctx, "after writes", h.db, h.m)
}

// TestDBFollowerWatchersSurviveSnapshotInstall: watchers on a follower go on
// through the installation of a snapshot. The cluster never compacts, so no
// watcher may lose anything: a watcher catching up from old history while
// the snapshot is restored (its reader slow, so that it reads History all
// through the restore) must deliver every revision exactly, and a watch
// "from now" created during the install must start after the follower's
// revision, never replay from revision 2.
func TestDBFollowerWatchersSurviveSnapshotInstall(t *testing.T) {
	c := newSnapCluster(t, engine.SnapshotConfig{Threshold: 100, CatchUpMargin: 10},
		kv.Options{Watch: watch.Config{EventQueueSize: 1, WatcherBufferSize: 1}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader := c.Leader(t)
	follower := leader%3 + 1
	ldb := c.DBs[leader]

	// values[rev] is the value put at rev (every revision is one put of k/*).
	values := map[int64]string{}
	var mu sync.Mutex
	put := func(n, size int) {
		t.Helper()
		var wg sync.WaitGroup
		errc := make(chan error, 16)
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 16 {
					v := fmt.Sprintf("%d:%s", i, strings.Repeat("x", size))
					r, err := ldb.Put(ctx, fmt.Sprintf("k/%d", i%50), v)
					if err != nil {
						errc <- err
						return
					}
					mu.Lock()
					values[r.Header.Revision] = v
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
	}
	start := time.Now()
	put(400, 10)
	r0 := int64(len(values)) + 1
	waitRev(t, ctx, c.DBs[follower], r0)
	downAt := c.DBs[follower].Engine().Status().LastIndex
	c.Stop(t, follower)
	put(150, 32<<10) // a snapshot of some megabytes, so that restoring it takes a while
	final := int64(len(values)) + 1
	waitLogCompacted(t, ldb, downAt)
	t.Logf("writes took %v", time.Since(start))
	installed := c.events[follower].count(engine.EventSnapshotInstalled)

	c.Start(t, follower)
	fdb := c.DBs[follower]
	slow, err := fdb.Watch(ctx, "k/", cairn.WithPrefix(), cairn.WithRev(2))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()

	// Watches from now, opened and checked over and over during the install.
	stop := make(chan struct{})
	stopNow := sync.OnceFunc(func() { close(stop) })
	defer stopNow()
	nowErr := make(chan error, 1)
	go func() {
		defer close(nowErr)
		for {
			select {
			case <-stop:
				return
			default:
			}
			w, err := fdb.Watch(ctx, "k/", cairn.WithPrefix())
			if err != nil {
				nowErr <- fmt.Errorf("watch from now: %w", err)
				return
			}
			time.Sleep(2 * time.Millisecond)
			select {
			case r := <-w.C():
				if r.Canceled || (len(r.Events) > 0 && r.Events[0].Kv.ModRevision <= r0) {
					nowErr <- fmt.Errorf("a watch from now opened on a follower at revision >= %d got %+v", r0, r)
					w.Close()
					return
				}
			default:
			}
			w.Close()
		}
	}()

	next := int64(2)
	for next <= final {
		r, ok := <-slow.C()
		if !ok {
			t.Fatalf("the follower's watcher from revision 2 ended at revision %d of %d, with no compaction: %v", next, final, slow.Err())
		}
		for _, ev := range r.Events {
			if ev.Kv.ModRevision != next || string(ev.Kv.Value) != values[next] {
				t.Fatalf("event at %d (value %.12q), want revision %d (value %.12q)", ev.Kv.ModRevision, ev.Kv.Value, next, values[next])
			}
			next++
		}
		if c.events[follower].count(engine.EventSnapshotInstalled) == installed {
			time.Sleep(time.Millisecond) // a slow reader: it reads History all through the install
		}
	}
	stopNow()
	if err := <-nowErr; err != nil {
		t.Fatal(err)
	}
	if c.events[follower].count(engine.EventSnapshotInstalled) == installed {
		t.Fatal("the follower caught up without a snapshot")
	}
}
