package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

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

// TestQueueRemote: producers and workers, each on its own client, on a
// three-node cluster.
func TestQueueRemote(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{})
	queue(t, func() cairn.KV {
		cl, err := client.New(client.Config{Endpoints: c.Endpoints(), DialTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	})
}

// TestQueueEmbedded: the same, sharing one embedded database.
func TestQueueEmbedded(t *testing.T) {
	db, err := cairn.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	queue(t, func() cairn.KV { return db })
}

// queue puts a backlog before any worker runs, then starts the workers and
// more producers at once; every item must be handled exactly once, the
// backlog included, and the queue must end empty.
func queue(t *testing.T, connect func() cairn.KV) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const prefix = "q/"
	const backlogProducers, producers, workers, items = 2, 3, 4, 40

	produce := func(p int) error {
		db := connect()
		for i := range items {
			if err := Produce(ctx, db, prefix, fmt.Sprintf("p%d-%03d", p, i), "v"); err != nil {
				return err
			}
		}
		return nil
	}
	var pwg sync.WaitGroup
	errs := make(chan error, backlogProducers+producers+workers)
	startProducers := func(from, n int) {
		for p := from; p < from+n; p++ {
			pwg.Add(1)
			go func() {
				defer pwg.Done()
				if err := produce(p); err != nil {
					errs <- fmt.Errorf("producer %d: %w", p, err)
				}
			}()
		}
	}
	startProducers(0, backlogProducers)
	pwg.Wait()

	var mu sync.Mutex
	handled := map[string]int{}
	byWorker := make([]int, workers)
	total := (backlogProducers + producers) * items
	all := make(chan struct{})
	wctx, stop := context.WithCancel(ctx)
	var wwg sync.WaitGroup
	for i := range workers {
		w := &Worker{KV: connect(), Prefix: prefix, Handle: func(key, _ string) {
			mu.Lock()
			defer mu.Unlock()
			handled[key]++
			byWorker[i]++
			if len(handled) == total && handled[key] == 1 {
				close(all)
			}
		}}
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			if err := w.Run(wctx); err != nil {
				errs <- fmt.Errorf("worker %d: %w", i, err)
			}
		}()
	}
	startProducers(backlogProducers, producers)
	pwg.Wait()

	select {
	case <-all:
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(60 * time.Second):
		mu.Lock()
		t.Fatalf("%d of %d items handled after 60s", len(handled), total)
	}
	// Leave time for a duplicate to show up, then stop the workers.
	time.Sleep(200 * time.Millisecond)
	stop()
	wwg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for key, n := range handled {
		if n != 1 {
			t.Errorf("%s handled %d times", key, n)
		}
	}
	for p := range backlogProducers + producers {
		for i := range items {
			if key := fmt.Sprintf("%sp%d-%03d", prefix, p, i); handled[key] == 0 {
				t.Errorf("%s never handled", key)
			}
		}
	}
	t.Logf("%d items, handled per worker: %v", len(handled), byWorker)
	left, err := connect().Get(ctx, prefix, cairn.WithPrefix(), cairn.WithCountOnly())
	if err != nil || left.Count != 0 {
		t.Fatalf("queue not empty: %v %v", left, err)
	}
}

// TestCommand runs the command embedded: a producer, then a worker that
// drains the backlog.
func TestCommand(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, "", dir, "queue/", 3, &out); err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithTimeout(ctx, 2*time.Second)
	defer stop()
	var wout bytes.Buffer
	if err := run(wctx, "", dir, "queue/", 0, &wout); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(wout.String(), "handled "); n != 3 {
		t.Fatalf("worker output %q: want 3 items", wout.String())
	}
}
