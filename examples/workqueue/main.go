// Command workqueue is a work queue on cairn: producers put items under a
// prefix, workers watch the prefix and claim each item with a transaction,
// so that every item is handled by exactly one worker.
//
//	go run ./examples/workqueue --endpoints 127.0.0.1:2379              # a worker
//	go run ./examples/workqueue --endpoints 127.0.0.1:2379 --produce 10 # a producer
//	go run ./examples/workqueue --data-dir /tmp/qdb --produce 10        # embedded
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/cairn-db/cairn/examples/internal/kvflag"
)

func main() {
	conn := kvflag.Register(flag.CommandLine)
	prefix := flag.String("prefix", "queue/", "the queue's prefix")
	produce := flag.Int("produce", 0, "put this many items and exit, instead of working")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, conn.Endpoints, conn.DataDir, *prefix, *produce, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "workqueue:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, endpoints, dataDir, prefix string, produce int, out io.Writer) error {
	db, err := kvflag.Open(endpoints, dataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	if produce > 0 {
		host, _ := os.Hostname()
		for i := range produce {
			name := fmt.Sprintf("%s-%d-%d-%d", host, os.Getpid(), time.Now().UnixNano(), i)
			if err := Produce(ctx, db, prefix, name, fmt.Sprintf("item %d", i)); err != nil {
				return err
			}
			fmt.Fprintln(out, "produced", prefix+name)
		}
		return nil
	}
	w := &Worker{KV: db, Prefix: prefix, Handle: func(key, value string) {
		fmt.Fprintf(out, "handled %s: %s\n", key, value)
	}}
	return w.Run(ctx)
}
