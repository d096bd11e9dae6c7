package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/goleak"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/client"
	"github.com/cairn-db/cairn/internal/servercluster"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/resolver/dns.(*dnsResolver).watcher"),
	)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, endpoints []string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestMutualExclusion runs lockers on their own clients against a
// three-node cluster. Each holder does a deliberately racy
// read-modify-write of a counter (read, pause, write back plus one, the
// write fenced by the lock): with two holders at once, increments would be
// lost, and the in-process holder count would exceed one. Every locker
// gets the lock every round, and the fencing tokens grow.
func TestMutualExclusion(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{})
	ctx := ctxT(t, 2*time.Minute)
	const lockers, rounds = 5, 4

	var holders atomic.Int32
	var mu sync.Mutex
	var tokens []int64
	var wg sync.WaitGroup
	errs := make(chan error, lockers)
	for i := range lockers {
		db := connect(t, c.Endpoints())
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				if err := lockedIncrement(ctx, db, &holders, func(tok int64) {
					mu.Lock()
					tokens = append(tokens, tok)
					mu.Unlock()
				}); err != nil {
					errs <- fmt.Errorf("locker %d round %d: %w", i, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	db := connect(t, c.Endpoints())
	r, err := db.Get(ctx, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != strconv.Itoa(lockers*rounds) {
		t.Fatalf("counter %v, want %d: increments were lost", r.Kvs, lockers*rounds)
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Fatalf("fencing token %d after %d", tokens[i], tokens[i-1])
		}
	}
	if rest, _ := db.Get(ctx, "locks/", cairn.WithPrefix()); len(rest.Kvs) != 0 {
		t.Fatalf("lock keys left: %v", rest.Kvs)
	}

	// The command itself, remote.
	var out bytes.Buffer
	if err := run(ctx, strings.Join(c.Endpoints(), ","), "", "cmd", 5, 10*time.Millisecond, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "acquired") || !strings.Contains(out.String(), "released") {
		t.Fatalf("output %q", out.String())
	}
}

// lockedIncrement takes the lock and increments the counter without
// atomicity of its own: only the lock keeps it correct.
func lockedIncrement(ctx context.Context, db cairn.KV, holders *atomic.Int32, token func(int64)) error {
	s, err := NewSession(ctx, db, 5)
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	m := NewMutex(db, "counter", s.Lease())
	if err := m.Lock(ctx); err != nil {
		return err
	}
	if n := holders.Add(1); n != 1 {
		return fmt.Errorf("%d holders at once", n)
	}
	token(m.Rev())
	r, err := db.Get(ctx, "counter")
	if err != nil {
		return err
	}
	n := 0
	if len(r.Kvs) == 1 {
		n, _ = strconv.Atoi(string(r.Kvs[0].Value))
	}
	time.Sleep(2 * time.Millisecond)
	tr, err := db.Txn(ctx, &pb.TxnRequest{
		Compare: []*pb.Compare{m.IfHeld()},
		Success: []*pb.RequestOp{putOp(cairn.PutRequest("counter", strconv.Itoa(n+1)))},
	})
	if err != nil {
		return err
	}
	if !tr.Succeeded {
		return fmt.Errorf("fenced write refused: the lock was lost")
	}
	holders.Add(-1)
	return m.Unlock(ctx)
}

// TestLeaseExpiry: a holder that stops renewing its lease (as a crashed one
// would) loses the lock once the lease expires, and the waiter gets it;
// not before, and the old holder's fenced writes are refused.
func TestLeaseExpiry(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{})
	ctx := ctxT(t, time.Minute)
	a, b := connect(t, c.Endpoints()), connect(t, c.Endpoints())

	sa, err := NewSession(ctx, a, 1)
	if err != nil {
		t.Fatal(err)
	}
	ma := NewMutex(a, "expiry", sa.Lease())
	if err := ma.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	sb, err := NewSession(ctx, b, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close(ctx)
	mb := NewMutex(b, "expiry", sb.Lease())
	acquired := make(chan error, 1)
	go func() { acquired <- mb.Lock(ctx) }()

	// While a renews, b waits, for several of a's TTLs.
	select {
	case err := <-acquired:
		t.Fatalf("b got the lock while a held it: %v", err)
	case <-time.After(3 * time.Second):
	}
	if held, err := ma.Held(ctx); err != nil || !held {
		t.Fatalf("a lost the lock while renewing: %v %v", held, err)
	}

	sa.Orphan()
	stopped := time.Now()
	select {
	case err := <-acquired:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("b did not get the lock within 20s of a's lease running out")
	}
	t.Logf("b got the lock %v after a stopped renewing (TTL 1s)", time.Since(stopped).Round(time.Millisecond))
	if held, err := ma.Held(ctx); err != nil || held {
		t.Fatalf("a still holds: %v %v", held, err)
	}
	if held, err := mb.Held(ctx); err != nil || !held {
		t.Fatalf("b does not hold: %v %v", held, err)
	}
	tr, err := a.Txn(ctx, &pb.TxnRequest{
		Compare: []*pb.Compare{ma.IfHeld()},
		Success: []*pb.RequestOp{putOp(cairn.PutRequest("fenced", "a"))},
	})
	if err != nil || tr.Succeeded {
		t.Fatalf("a's fenced write after losing the lock: %v %v", tr, err)
	}
	if _, err := a.TimeToLive(ctx, sa.Lease(), false); !leaseGone(err) {
		t.Fatalf("a's lease: %v, want gone", err)
	}
	if err := mb.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestEmbedded runs the command on an embedded database: the same code,
// another line to open it.
func TestEmbedded(t *testing.T) {
	var out bytes.Buffer
	if err := run(ctxT(t, 30*time.Second), "", t.TempDir(), "cmd", 5, 10*time.Millisecond, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "acquired") || !strings.Contains(out.String(), "released") {
		t.Fatalf("output %q", out.String())
	}
}
