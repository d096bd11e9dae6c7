package engine_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/examples/memkv"
	"github.com/cairn-db/cairn/storage"
)

// single starts a one-node engine in dir on a free loopback port.
func single(t *testing.T, dir string, edit ...func(*engine.Config)) (*engine.Engine, *memkv.Store, error) {
	t.Helper()
	sm := memkv.New()
	cfg := engine.Config{
		NodeID: 1, DataDir: dir, ListenPeer: "127.0.0.1:0", StateMachine: sm,
		Raft:   engine.RaftConfig{TickMs: 10, ElectionTick: 10, HeartbeatTick: 1},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, f := range edit {
		f(&cfg)
	}
	e, err := engine.Start(cfg)
	return e, sm, err
}

func mustSingle(t *testing.T, dir string, edit ...func(*engine.Config)) (*engine.Engine, *memkv.Store) {
	t.Helper()
	e, sm, err := single(t, dir, edit...)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { e.Stop() })
	select {
	case <-e.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("single node not ready")
	}
	return e, sm
}

func TestSingleNodeRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	e, _ := mustSingle(t, dir, func(c *engine.Config) { c.Snapshot = engine.SnapshotConfig{Threshold: 100, CatchUpMargin: 10} })
	ctx := ctxT(t, 20*time.Second)
	for i := 0; i < 350; i++ {
		if _, err := e.Propose(ctx, memkv.Set(fmt.Sprint(i), fmt.Sprint(i*i))); err != nil {
			t.Fatal(err)
		}
	}
	before := e.Status()
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	e2, sm := mustSingle(t, dir)
	// Restart restores the snapshot, then replays the log after it.
	deadline := time.Now().Add(5 * time.Second)
	for sm.Len() < 350 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	for i := 0; i < 350; i++ {
		if v, _ := sm.Get(fmt.Sprint(i)); v != fmt.Sprint(i*i) {
			t.Fatalf("after restart key %d = %q", i, v)
		}
	}
	after := e2.Status()
	if before.SnapshotIndex == 0 || after.SnapshotIndex < before.SnapshotIndex || after.FirstIndex <= 1 {
		t.Fatalf("snapshot/compaction not kept: before %+v after %+v", before, after)
	}
	if after.Applied < before.Applied {
		t.Fatalf("applied %d after restart, was %d", after.Applied, before.Applied)
	}
}

func TestSecondProcessOnDataDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	mustSingle(t, dir)
	_, _, err := single(t, dir)
	if !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("second start on %s: %v, want ErrLocked", dir, err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Fatalf("error %q does not name the directory", err)
	}
}

func TestDataDirOfAnotherClusterIsRefused(t *testing.T) {
	dir := t.TempDir()
	e, _ := mustSingle(t, dir)
	e.Stop()
	_, _, err := single(t, dir, func(c *engine.Config) { c.ClusterName = "other" })
	if !errors.Is(err, storage.ErrIdentity) || !strings.Contains(err.Error(), `"other"`) {
		t.Fatalf("start with another cluster name: %v, want ErrIdentity naming both clusters", err)
	}
	_, _, err = single(t, dir, func(c *engine.Config) { c.NodeID = 2 })
	if !errors.Is(err, storage.ErrIdentity) {
		t.Fatalf("start as another node: %v, want ErrIdentity", err)
	}
}

func TestStopFailsInFlightProposals(t *testing.T) {
	dir := t.TempDir()
	e, _ := mustSingle(t, dir)
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		go func() {
			_, err := e.Propose(context.Background(), memkv.Set(fmt.Sprint(i), "v"))
			errs <- err
		}()
	}
	e.Stop()
	for i := 0; i < 64; i++ {
		select {
		case err := <-errs:
			if err != nil && !errors.Is(err, engine.ErrStopped) {
				t.Fatalf("in-flight proposal: %v, want nil or ErrStopped", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a proposal was still waiting after Stop")
		}
	}
	if _, err := e.Propose(context.Background(), memkv.Set("late", "v")); !errors.Is(err, engine.ErrStopped) {
		t.Fatalf("propose after stop: %v, want ErrStopped", err)
	}
}

func TestProposalErrors(t *testing.T) {
	e, _ := mustSingle(t, t.TempDir(), func(c *engine.Config) { c.Raft.MaxProposalBytes = 1024 })
	if _, err := e.Propose(ctxT(t, time.Second), make([]byte, 2048)); !errors.Is(err, engine.ErrTooLarge) {
		t.Fatalf("oversized proposal: %v, want ErrTooLarge", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Propose(ctx, memkv.Set("k", "v")); err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}

func TestCorruptLogEntryStopsStartWithFileAndIndex(t *testing.T) {
	dir := t.TempDir()
	e, _ := mustSingle(t, dir)
	ctx := ctxT(t, 10*time.Second)
	for i := 0; i < 20; i++ {
		if _, err := e.Propose(ctx, memkv.Set(fmt.Sprint(i), "v")); err != nil {
			t.Fatal(err)
		}
	}
	e.Stop()
	// Flip a byte inside log entry 10 (keys: 0x00 'l' then the big-endian
	// index, as the storage package documents).
	dbDir := filepath.Join(dir, "db")
	db, err := pebble.Open(dbDir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := binary.BigEndian.AppendUint64([]byte{0x00, 'l'}, 10)
	v, closer, err := db.Get(key)
	if err != nil {
		t.Fatalf("entry 10 not found: %v", err)
	}
	bad := append([]byte(nil), v...)
	closer.Close()
	bad[len(bad)-1] ^= 0xff
	if err := db.Set(key, bad, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, _, err = single(t, dir)
	if !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("start on a corrupt log: %v, want ErrCorrupt", err)
	}
	for _, want := range []string{dbDir, "entry 10"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name %q", err, want)
		}
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct {
		edit func(*engine.Config)
		want string
	}{
		{func(c *engine.Config) { c.DataDir = "" }, "data dir"},
		{func(c *engine.Config) { c.Raft.ElectionTick, c.Raft.HeartbeatTick = 2, 3 }, "raft.election_tick"},
		{func(c *engine.Config) { c.Persistence.Strategy = "Sometimes" }, "raft.persistence.strategy"},
		{func(c *engine.Config) {
			c.Persistence.FlushPolicy = engine.FlushPolicy{Threshold: 0, Interval: time.Second}
		}, "flush_policy.Batch.threshold"},
		{func(c *engine.Config) {
			c.InitialCluster = []engine.Peer{{ID: 1, Addr: "a:1"}, {ID: 1, Addr: "b:1"}}
		}, "listed twice"},
		{func(c *engine.Config) { c.InitialCluster = []engine.Peer{{ID: 2, Addr: "a:1"}} }, "does not include this node"},
		{func(c *engine.Config) { c.Network.Data.QueueSize = -1 }, "network.data.queue_size"},
	}
	for _, tc := range cases {
		dir := t.TempDir()
		_, _, err := single(t, dir, tc.edit)
		if !errors.Is(err, engine.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config error %v: want ErrInvalidConfig naming %q", err, tc.want)
		}
	}
}
