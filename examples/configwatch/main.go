// Command configwatch keeps a local copy of the keys under a prefix and
// prints every change as it applies it. It records the copy and its
// revision in a state file, so that after a restart it applies exactly the
// changes it missed, in order (or reads everything again if the cluster
// compacted them away meanwhile, and says so).
//
//	go run ./examples/configwatch --endpoints 127.0.0.1:2379 --prefix config/ --state config.json
//	go run ./examples/configwatch --data-dir /tmp/cfgdb --prefix config/     # embedded
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/cairn-db/cairn/examples/internal/kvflag"
)

func main() {
	conn := kvflag.Register(flag.CommandLine)
	prefix := flag.String("prefix", "config/", "the prefix to mirror")
	stateFile := flag.String("state", "configwatch.json", "the state file: the local copy and its revision")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, conn.Endpoints, conn.DataDir, *prefix, *stateFile, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "configwatch:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, endpoints, dataDir, prefix, stateFile string, out io.Writer) error {
	db, err := kvflag.Open(endpoints, dataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	m := &Mirror{KV: db, Prefix: prefix, State: stateFile, Apply: func(c Change) { fmt.Fprintln(out, c) }}
	return m.Run(ctx)
}
