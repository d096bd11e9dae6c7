package mvcc

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestConcurrentReads: readers running during commits see whole commits
// only, with a header revision that matches the data, and a revision that
// never goes back; snapshots taken meanwhile restore to a whole commit too.
// Every commit writes the same value to every key (ten revisions per
// commit), so a torn read shows as two different values.
func TestConcurrentReads(t *testing.T) {
	e := newEnv(t, Options{})
	// Widen the window between a commit reaching Pebble and its state being
	// published, where a reader must not pair new data with the old state.
	e.s.afterPebbleWrite = func() {
		for range 4 {
			runtime.Gosched()
		}
	}
	const keys, commits = 10, 80
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	checkWhole := func(resp *pb.RangeResponse) error {
		if len(resp.Kvs) == 0 {
			return nil
		}
		var maxMod int64
		for _, kv := range resp.Kvs {
			if !bytes.Equal(kv.Value, resp.Kvs[0].Value) {
				return fmt.Errorf("torn read at revision %d: %q and %q", resp.Header.Revision, resp.Kvs[0].Value, kv.Value)
			}
			maxMod = max(maxMod, kv.ModRevision)
		}
		if len(resp.Kvs) != keys || maxMod != resp.Header.Revision {
			return fmt.Errorf("read of %d keys, newest at %d, under header revision %d", len(resp.Kvs), maxMod, resp.Header.Revision)
		}
		return nil
	}
	all := &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")}
	for range 3 {
		wg.Go(func() {
			var last int64
			for !done.Load() {
				resp, err := e.s.Range(all)
				if err == nil {
					err = checkWhole(resp)
				}
				if err == nil && resp.Header.Revision < last {
					err = fmt.Errorf("revision went back from %d to %d", last, resp.Header.Revision)
				}
				if err != nil {
					report(err)
					return
				}
				last = resp.Header.Revision
				if revs, err := e.s.History(max(1, last-5), 0); err != nil || (len(revs) > 0 && revs[len(revs)-1].Rev < last) {
					report(fmt.Errorf("History during commits: %v, %d revisions", err, len(revs)))
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := 0; !done.Load() && i < 5; i++ {
			sn, err := e.s.Snapshot()
			if err != nil {
				report(err)
				return
			}
			var buf bytes.Buffer
			_, err = sn.WriteTo(&buf)
			sn.Release()
			if err == nil {
				err = restoreAndCheck(&buf, func(s *Store) error {
					resp, err := s.Range(all)
					if err == nil {
						err = checkWhole(resp)
					}
					return err
				})
			}
			if err != nil {
				report(err)
				return
			}
			runtime.Gosched()
		}
	})
	for i := 1; i <= commits; i++ {
		b := e.s.NewBatch()
		for k := range keys {
			if _, err := b.Put(&pb.PutRequest{Key: fmt.Appendf(nil, "k%d", k), Value: fmt.Appendf(nil, "%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.Commit(uint64(i)); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// restoreAndCheck restores a stream into a fresh in-memory Pebble and runs
// check on the result.
func restoreAndCheck(r *bytes.Buffer, check func(*Store) error) error {
	db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem(), Logger: quietLogger{}})
	if err != nil {
		return err
	}
	defer db.Close()
	s, err := Open(db, Options{})
	if err != nil {
		return err
	}
	if err := s.Restore(r, 1); err != nil {
		return err
	}
	return check(s)
}
