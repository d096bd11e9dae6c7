package engine_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/examples/memkv"
	"github.com/cairn-db/cairn/internal/testcluster"
)

// slowSyncFS delays every sync by *delay (0: none): a slow or busy disk.
type slowSyncFS struct {
	vfs.FS
	delay *atomic.Int64
}

func (fs slowSyncFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	return slowSyncFile{File: f, delay: fs.delay}, nil
}

func (fs slowSyncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.Create(name, c))
}

func (fs slowSyncFS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.ReuseForWrite(old, name, c))
}

func (fs slowSyncFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.wrap(fs.FS.OpenReadWrite(name, c, opts...))
}

type slowSyncFile struct {
	vfs.File
	delay *atomic.Int64
}

func (f slowSyncFile) pause() { time.Sleep(time.Duration(f.delay.Load())) }

func (f slowSyncFile) Sync() error     { f.pause(); return f.File.Sync() }
func (f slowSyncFile) SyncData() error { f.pause(); return f.File.SyncData() }
func (f slowSyncFile) SyncTo(n int64) (bool, error) {
	f.pause()
	return f.File.SyncTo(n)
}

// A deposed leader holds uncommitted entries of its old term. When the new
// leader overwrites them, raft commits the new entries in memory before the
// log writer has replaced the old ones on disk; a leader's retransmission
// (a probe resent on every heartbeat response) in that window must not be
// taken for a divergence of committed history.
func TestDeposedLeaderOverwrittenWhileDiskIsSlowDoesNotDiverge(t *testing.T) {
	var delays [4]atomic.Int64
	c := testcluster.New(t, 3, testcluster.Options{
		Configure: func(cfg *engine.Config) {
			cfg.Storage.FS = slowSyncFS{FS: vfs.Default, delay: &delays[cfg.NodeID]}
		},
	})
	writeN(t, c, "a", 10)
	old := c.WaitLeader(5 * time.Second)
	c.Net.Isolate(old)
	// The isolated leader appends entries of its term it can never commit.
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			c.Propose(ctx, old, memkv.Set(fmt.Sprintf("lost%d", i), "x"))
		}()
	}
	wg.Wait()
	// The others elect a leader and commit entries at the same indexes.
	deadline := time.Now().Add(10 * time.Second)
	for l := c.Leader(); l == 0 || l == old; l = c.Leader() {
		if time.Now().After(deadline) {
			t.Fatal("no new leader")
		}
		time.Sleep(5 * time.Millisecond)
	}
	writeN(t, c, "b", 20)
	// The deposed leader's disk is slow when the new leader repairs its log.
	delays[old].Store(int64(300 * time.Millisecond))
	c.Net.Heal()
	deadline = time.Now().Add(10 * time.Second)
	for {
		select {
		case <-c.Node(old).Engine.Done():
			t.Fatalf("node %d stopped: %v", old, c.Node(old).Engine.Err())
		default:
		}
		if _, ok := c.Node(old).SM.Get("b19"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d did not catch up", old)
		}
		time.Sleep(5 * time.Millisecond)
	}
	delays[old].Store(0)
	c.WaitConverged(10 * time.Second)
	if alive := c.Alive(); len(alive) != 3 {
		t.Fatalf("alive %v; want all 3", alive)
	}
	requireKeys(t, c, "a", 10)
	requireKeys(t, c, "b", 20)
	for _, id := range c.Running() {
		for i := 0; i < 5; i++ {
			if _, ok := c.Node(id).SM.Get(fmt.Sprintf("lost%d", i)); ok {
				t.Fatalf("node %d applied an uncommitted write of the deposed leader", id)
			}
		}
	}
	c.Check()
}
