package cairn_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/kv"
)

// TestReadsAfterTheEngineStoppedFail: when the engine stops by itself (a
// failure; here Stop called on it directly), it closes the storage the
// state machine reads from; reads and maintenance calls on the DB then fail
// with an error instead of reaching a closed Pebble.
func TestReadsAfterTheEngineStoppedFail(t *testing.T) {
	db := open(t, t.TempDir())
	ctx := ctxT(t)
	if _, err := db.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := db.Engine().Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := func(err error) bool { return errors.Is(err, kv.ErrClosed) || errors.Is(err, engine.ErrStopped) }
	if _, err := db.Get(ctx, "k", cairn.WithSerializable()); !stopped(err) {
		t.Errorf("serializable get after stop: %v, want ErrClosed", err)
	}
	if _, err := db.Get(ctx, "k"); !stopped(err) {
		t.Errorf("linearizable get after stop: %v, want an error", err)
	}
	if _, err := db.HashKV(ctx, 0); !stopped(err) {
		t.Errorf("HashKV after stop: %v", err)
	}
	if _, err := db.Snapshot(ctx, &bytes.Buffer{}); !stopped(err) {
		t.Errorf("Snapshot after stop: %v", err)
	}
	if err := db.Defragment(ctx); !stopped(err) {
		t.Errorf("Defragment after stop: %v", err)
	}
	if total, inUse := db.Size(); total != 0 || inUse != 0 {
		t.Errorf("Size after stop: %d %d, want 0 0", total, inUse)
	}
}
