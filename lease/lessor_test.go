package lease

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a manual clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openDB(t *testing.T, fs vfs.FS) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("/db", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newLessor(t *testing.T, db *pebble.DB, c *clock) *Lessor {
	t.Helper()
	l, err := Open(db, Options{Now: c.now, RetryRevoke: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// apply runs f against a batch and commits it, as the state machine does.
func apply(t *testing.T, db *pebble.DB, f func(w Writer) error) error {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	if err := f(b); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	return nil
}

func TestGrantRevokePersist(t *testing.T) {
	fs := vfs.NewMem()
	db := openDB(t, fs)
	c := &clock{t: time.Unix(1000, 0)}
	l := newLessor(t, db, c)
	for _, id := range []int64{7, 3} {
		if err := apply(t, db, func(w Writer) error { _, err := l.Grant(w, id, 10); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if err := apply(t, db, func(w Writer) error { _, err := l.Grant(w, 7, 5); return err }); !errors.Is(err, ErrExists) {
		t.Fatalf("granting an existing id: %v, want ErrExists", err)
	}
	if err := apply(t, db, func(w Writer) error { return l.Revoke(w, 3) }); err != nil {
		t.Fatal(err)
	}
	if err := apply(t, db, func(w Writer) error { return l.Revoke(w, 3) }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking twice: %v, want ErrNotFound", err)
	}
	db.Close()

	db = openDB(t, fs)
	defer db.Close()
	l = newLessor(t, db, c)
	got := l.List()
	if len(got) != 1 || got[0].ID != 7 || got[0].TTL != 10 {
		t.Fatalf("after restart: %+v, want lease 7 with TTL 10", got)
	}
	if l.Exists(3) {
		t.Fatal("revoked lease 3 came back after restart")
	}
}

func TestGrantBadInput(t *testing.T) {
	db := openDB(t, vfs.NewMem())
	defer db.Close()
	l := newLessor(t, db, &clock{})
	cases := []struct {
		id, ttl int64
		want    error
	}{
		{0, 10, ErrInvalidID},
		{-1, 10, ErrInvalidID},
		{1, MaxTTL + 1, ErrTTLTooLarge},
	}
	for _, tc := range cases {
		err := apply(t, db, func(w Writer) error { _, err := l.Grant(w, tc.id, tc.ttl); return err })
		if !errors.Is(err, tc.want) {
			t.Errorf("Grant(%d, %d): %v, want %v", tc.id, tc.ttl, err, tc.want)
		}
	}
	if n := len(l.List()); n != 0 {
		t.Fatalf("bad grants left %d leases", n)
	}
	// A TTL below the minimum is raised to it.
	if err := apply(t, db, func(w Writer) error { _, err := l.Grant(w, 5, 0); return err }); err != nil {
		t.Fatal(err)
	}
	if ls, _ := l.Lookup(5); ls.TTL != 1 {
		t.Fatalf("TTL 0 granted as %d, want the minimum 1", ls.TTL)
	}
}

func TestOnlyTheLeaderExpiresAndRenews(t *testing.T) {
	db := openDB(t, vfs.NewMem())
	defer db.Close()
	c := &clock{t: time.Unix(1000, 0)}
	l := newLessor(t, db, c)
	apply(t, db, func(w Writer) error { _, err := l.Grant(w, 1, 5); return err })
	c.advance(time.Hour)
	if got := l.Expired(10); got != nil {
		t.Fatalf("a follower expired %v", got)
	}
	if _, err := l.Renew(1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("renew on a follower: %v, want ErrNotLeader", err)
	}
	// Becoming leader gives the full TTL (plus the extension) from now.
	l.Promote(time.Second)
	c.advance(5 * time.Second)
	if got := l.Expired(10); got != nil {
		t.Fatalf("expired %v within TTL + extension after promotion", got)
	}
	if ls, _ := l.Lookup(1); ls.Remaining != time.Second {
		t.Fatalf("remaining %v, want 1s", ls.Remaining)
	}
	if ttl, err := l.Renew(1); err != nil || ttl != 5 {
		t.Fatalf("renew: %d, %v", ttl, err)
	}
	c.advance(4 * time.Second)
	if got := l.Expired(10); got != nil {
		t.Fatalf("expired %v after a renewal", got)
	}
	c.advance(2 * time.Second)
	if got := l.Expired(10); !slices.Equal(got, []int64{1}) {
		t.Fatalf("Expired = %v, want [1]", got)
	}
	// Handed out once; again only if the revocation did not apply in time.
	if got := l.Expired(10); got != nil {
		t.Fatalf("Expired handed out lease 1 twice at once: %v", got)
	}
	if _, err := l.Renew(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("renew of an expiring lease: %v, want ErrNotFound", err)
	}
	c.advance(2 * time.Second)
	if got := l.Expired(10); !slices.Equal(got, []int64{1}) {
		t.Fatalf("lost revocation not retried: %v", got)
	}
	apply(t, db, func(w Writer) error { return l.Revoke(w, 1) })
	c.advance(time.Hour)
	if got := l.Expired(10); got != nil {
		t.Fatalf("revoked lease expired again: %v", got)
	}
	l.Demote()
	apply(t, db, func(w Writer) error { _, err := l.Grant(w, 2, 1); return err })
	c.advance(time.Hour)
	if got := l.Expired(10); got != nil {
		t.Fatalf("a demoted node expired %v", got)
	}
}

func TestExpiredRespectsLimit(t *testing.T) {
	db := openDB(t, vfs.NewMem())
	defer db.Close()
	c := &clock{t: time.Unix(1000, 0)}
	l := newLessor(t, db, c)
	l.Promote(0)
	for id := int64(1); id <= 10; id++ {
		apply(t, db, func(w Writer) error { _, err := l.Grant(w, id, 1); return err })
	}
	c.advance(2 * time.Second)
	seen := map[int64]bool{}
	for round := 0; round < 4; round++ {
		for _, id := range l.Expired(3) {
			if seen[id] {
				t.Fatalf("lease %d handed out twice", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != 10 {
		t.Fatalf("%d of 10 expired leases handed out", len(seen))
	}
}

func TestReloadAfterRestore(t *testing.T) {
	db := openDB(t, vfs.NewMem())
	defer db.Close()
	c := &clock{t: time.Unix(1000, 0)}
	l := newLessor(t, db, c)
	l.Promote(0)
	apply(t, db, func(w Writer) error { _, err := l.Grant(w, 1, 5); return err })
	// A snapshot restore rewrites the lease table underneath.
	b := db.NewBatch()
	b.Delete(recordKey(1), nil)
	b.Set(recordKey(9), []byte{0, 0, 0, 0, 0, 0, 0, 30}, nil)
	b.Commit(pebble.NoSync)
	if err := l.Reload(db); err != nil {
		t.Fatal(err)
	}
	if l.Exists(1) || !l.Exists(9) {
		t.Fatalf("after reload: %+v", l.List())
	}
	if ls, _ := l.Lookup(9); ls.TTL != 30 || ls.Remaining != 30*time.Second {
		t.Fatalf("reloaded lease on the leader: %+v, want TTL 30 with a fresh deadline", ls)
	}
	// A corrupt record stops Reload with an error.
	db.Set(append(append([]byte(nil), keyPrefix...), 1, 2, 3), []byte{1}, pebble.NoSync)
	if err := l.Reload(db); !errors.Is(err, errCorruptLease) {
		t.Fatalf("reload over a corrupt record: %v", err)
	}
}
