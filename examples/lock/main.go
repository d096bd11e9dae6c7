// Command lock takes a distributed lock, holds it for a while, and releases
// it. Run several at once against the same cluster: they take turns.
//
//	go run ./examples/lock --endpoints 127.0.0.1:2379 --name printer --hold 5s
//	go run ./examples/lock --data-dir /tmp/lockdb --name printer   # embedded
//
// The lock is etcd's recipe written on cairn.KV (see Mutex): the same code
// runs embedded and remote, and only the line that opens the database
// differs.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/examples/internal/kvflag"
)

func main() {
	conn := kvflag.Register(flag.CommandLine)
	name := flag.String("name", "demo", "the lock's name")
	ttl := flag.Int64("ttl", 10, "lease TTL in seconds: how long the lock outlives a holder that vanished")
	hold := flag.Duration("hold", 5*time.Second, "how long to hold the lock")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, conn.Endpoints, conn.DataDir, *name, *ttl, *hold, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "lock:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, endpoints, dataDir, name string, ttl int64, hold time.Duration, out io.Writer) error {
	db, err := kvflag.Open(endpoints, dataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	return holdLock(ctx, db, name, ttl, hold, out)
}

// holdLock takes lock name, holds it for d (or until ctx ends or the lease
// is lost), and releases it.
func holdLock(ctx context.Context, db cairn.KV, name string, ttl int64, d time.Duration, out io.Writer) error {
	s, err := NewSession(ctx, db, ttl)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		s.Close(cctx)
	}()
	m := NewMutex(db, name, s.Lease())
	fmt.Fprintf(out, "waiting for lock %q\n", name)
	if err := m.Lock(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "acquired lock %q (fencing token %d)\n", name, m.Rev())
	select {
	case <-time.After(d):
	case <-ctx.Done():
	case <-s.Done():
		return s.Err()
	}
	if err := m.Unlock(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	fmt.Fprintf(out, "released lock %q\n", name)
	return nil
}
