package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/engine"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "cairn",
		Short:         "cairn is a lightweight Raft consensus engine",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd())
	return root
}

func newServeCmd() *cobra.Command {
	cfg := engine.DefaultConfig()
	cfg.DataDir = "cairn-data"
	var logLevel string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a node (a one-node cluster in ./cairn-data by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: must be debug, info, warn or error", logLevel)
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			db, err := cairn.Start(cairn.Config{Engine: cfg})
			if err != nil {
				return err
			}
			e := db.Engine()
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sig)
			select {
			case <-e.Ready():
				cfg.Logger.Info("ready", "peer_addr", e.PeerAddr(), "data_dir", cfg.DataDir)
			case s := <-sig:
				cfg.Logger.Info("stopping", "signal", s.String())
				return db.Close()
			case <-e.Done():
				db.Close()
				return e.Err()
			}
			select {
			case s := <-sig:
				cfg.Logger.Info("stopping", "signal", s.String())
			case <-e.Done():
				db.Close()
				return e.Err()
			}
			return db.Close()
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&cfg.NodeID, "id", cfg.NodeID, "node id")
	f.StringVar(&cfg.ClusterName, "cluster-name", cfg.ClusterName, "cluster name")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory")
	f.StringVar(&cfg.ListenPeer, "listen-peer", cfg.ListenPeer, "address peers connect to")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}
