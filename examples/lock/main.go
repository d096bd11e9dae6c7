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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/client"
)

func main() {
	endpoints := flag.String("endpoints", "", "comma-separated client endpoints of a cairn cluster")
	dataDir := flag.String("data-dir", "", "run an embedded database in this directory instead")
	name := flag.String("name", "demo", "the lock's name")
	ttl := flag.Int64("ttl", 10, "lease TTL in seconds: how long the lock outlives a holder that vanished")
	hold := flag.Duration("hold", 5*time.Second, "how long to hold the lock")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *endpoints, *dataDir, *name, *ttl, *hold, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "lock:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, endpoints, dataDir, name string, ttl int64, hold time.Duration, out io.Writer) error {
	db, err := open(endpoints, dataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	return holdLock(ctx, db, name, ttl, hold, out)
}

// open is the one line that differs between remote and embedded.
func open(endpoints, dataDir string) (cairn.KV, error) {
	switch {
	case endpoints != "" && dataDir != "":
		return nil, errors.New("give --endpoints or --data-dir, not both")
	case endpoints != "":
		return client.Connect(strings.Split(endpoints, ",")...)
	case dataDir != "":
		return cairn.Open(dataDir)
	}
	return nil, errors.New("give --endpoints (remote) or --data-dir (embedded)")
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
