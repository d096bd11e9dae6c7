package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/config"
	"github.com/cairn-db/cairn/server"
)

// newRootCmd builds the cairn command, reading configuration variables from
// the process environment.
func newRootCmd() *cobra.Command { return newRootCmdEnv(os.Environ()) }

// newRootCmdEnv builds the cairn command with environ as its environment
// ("NAME=value" entries; tests pass their own).
func newRootCmdEnv(environ []string) *cobra.Command {
	root := &cobra.Command{
		Use:           "cairn",
		Short:         "cairn is a lightweight Raft consensus engine",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newServeCmd(environ),
		newConfigCmd(environ),
	)
	root.AddCommand(newClientCmds()...)
	return root
}

// serveFlags are the flags of cairn serve that set configuration keys.
var serveFlags = []struct{ flag, key, usage string }{
	{"name", "cluster.member_name", "this member's name, unique in its cluster"},
	{"cluster-name", "cluster.name", "the cluster's name"},
	{"data-dir", "cluster.data_dir", "directory of this member's data"},
	{"listen-client", "cluster.listen_client", "HOST:PORT the etcd v3 API listens on"},
	{"listen-peer", "cluster.listen_peer", "HOST:PORT other members connect to"},
	{"advertise-client", "cluster.advertise_client", "client URL published to the cluster (default: the address --listen-client is bound to)"},
	{"initial-cluster", "cluster.initial_cluster", "members of a new cluster, NAME=HOST:PORT,... with peer addresses (default: this member alone)"},
	{"join", "cluster.join", "client addresses of a running cluster to join, HOST:PORT,..."},
	{"log-level", "log.level", "debug, info, warn or error"},
	{"log-format", "log.format", "text or json"},
	{"metrics-addr", "metrics.address", "HOST:PORT of the HTTP listener of /metrics, /health and /ready (default: none)"},
}

func newServeCmd(environ []string) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a member (a one-node cluster in ./cairn-data by default)",
		Long: `Run a cluster member serving the etcd v3 API.

With no arguments it runs a one-node cluster with its data in ./cairn-data,
clients on 127.0.0.1:2379 and peers on 127.0.0.1:2380.

A setting comes from, last wins: its default, the file given by --config
(cairn config default prints every key), the environment (the key in upper
case after CAIRN_, dots replaced by underscores: CAIRN_CLUSTER_DATA_DIR), and
the flags below that are given. Interrupt or terminate the process to stop the
member cleanly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadServeConfig(cmd, file, environ)
			if err != nil {
				return err
			}
			cfg.Log.Output = cmd.ErrOrStderr()
			opts, err := cfg.ServerOptions()
			if err != nil {
				return withSources(err, sources(cmd, file, environ))
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sig)
			return serve(cmd.Context(), opts, sig)
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "config", "", "TOML configuration file")
	def := config.Default()
	for _, sf := range serveFlags {
		v, _ := def.Get(sf.key)
		f.String(sf.flag, v, sf.usage+" ["+sf.key+"]")
	}
	return cmd
}

// loadServeConfig combines the defaults, the file (if any), environ and the
// flags of cmd that were given.
func loadServeConfig(cmd *cobra.Command, file string, environ []string) (config.Config, error) {
	cfg, err := loadConfig(file, environ)
	if err != nil {
		return config.Config{}, err
	}
	for _, sf := range serveFlags {
		fl := cmd.Flags().Lookup(sf.flag)
		if !fl.Changed {
			continue
		}
		if err := cfg.Set(sf.key, fl.Value.String()); err != nil {
			return config.Config{}, withSources(err, map[string]string{sf.key: "--" + sf.flag})
		}
	}
	return cfg, nil
}

// serve runs a server with opts until ctx ends or a signal arrives on sig
// (then it shuts the server down and returns its error), or until the server
// stops by itself (then it returns why).
func serve(ctx context.Context, opts server.Options, sig <-chan os.Signal) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	srv, err := server.New(opts)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	ready := srv.Ready()
	for {
		select {
		case <-ready:
			ready = nil
			attrs := []any{"name", opts.Name, "client", srv.ClientAddr(),
				"peer", srv.DB().Engine().PeerAddr(), "data_dir", opts.DB.Engine.DataDir}
			if a := srv.MetricsAddr(); a != "" {
				attrs = append(attrs, "metrics", a)
			}
			log.Info("serving", attrs...)
		case <-srv.Done():
			if err := srv.Err(); err != nil {
				return fmt.Errorf("member stopped: %w", err)
			}
			return errors.New("member stopped")
		case s := <-sig:
			log.Info("stopping", "signal", s.String())
			return srv.Shutdown()
		case <-ctx.Done():
			log.Info("stopping", "cause", context.Cause(ctx).Error())
			return srv.Shutdown()
		}
	}
}
