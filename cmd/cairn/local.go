package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/config"
	"github.com/cairn-db/cairn/server"
)

// localOptions configure `cairn local`.
type localOptions struct {
	Host string
	// BasePort is the first member's client port; the others' are 20000 and
	// 30000 higher, and each member's peer port is its client port + 1
	// (etcd's Procfile layout). 0 picks free ports.
	BasePort int
	// DataDir holds one directory per member, kept at exit. Empty: a
	// temporary directory, removed at exit.
	DataDir string
	// ConfigFile, if set, is the TOML file every member starts from.
	ConfigFile string
	// LogLevel is debug, info, warn or error; empty keeps the
	// configuration's.
	LogLevel string
}

// localMembers are the names of `cairn local`'s members.
var localMembers = []string{"infra1", "infra2", "infra3"}

func newLocalCmd() *cobra.Command {
	o := localOptions{Host: "127.0.0.1", BasePort: 2379, LogLevel: "warn"}
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Run a three-member cluster in this process, to try cairn out",
		Long: `Local starts a three-member cluster on this machine, in one process, and
prints its endpoints. Clients listen on ports 2379, 22379 and 32379 and peers
on 2380, 22380 and 32380 by default (as etcd's Procfile); --base-port moves
them, and --base-port 0 picks free ports. The data lives in a temporary
directory removed at exit, unless --data-dir keeps it: a later run with the
same --data-dir starts the same cluster again, on the addresses it was created
with (recorded in DATA_DIR/local.json; --base-port is then ignored). Ctrl-C or SIGTERM stops the
cluster cleanly.

Exit codes: 0 after a clean stop, 1 if the cluster failed, 2 on bad usage.`,
		Example: "  cairn local\n  cairn local --base-port 12379 --data-dir ./local-data",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.BasePort < 0 || o.BasePort > 65535-30001 {
				return usagef("--base-port %d: must be 0 (free ports) or from 1 to %d", o.BasePort, 65535-30001)
			}
			if o.ConfigFile != "" && !cmd.Flags().Changed("log-level") {
				o.LogLevel = "" // the file's
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runLocal(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Host, "host", o.Host, "address every member listens on")
	fl.IntVar(&o.BasePort, "base-port", o.BasePort, "first member's client port (0: free ports)")
	fl.StringVar(&o.DataDir, "data-dir", "", "keep the members' data here (default: a temporary directory, removed at exit)")
	fl.StringVar(&o.ConfigFile, "config", "", "TOML configuration every member starts from (its [cluster] addresses are replaced)")
	fl.StringVar(&o.LogLevel, "log-level", o.LogLevel, "log level: debug, info, warn, error (default with --config: the file's)")
	return cmd
}

// runLocal runs the cluster until ctx ends or a member fails. It prints
// the endpoints to stdout once every member is ready; logs go to stderr.
func runLocal(ctx context.Context, o localOptions, stdout, stderr io.Writer) (err error) {
	base := config.Default()
	if o.ConfigFile != "" {
		if base, err = config.Load(o.ConfigFile); err != nil {
			return usageError{err}
		}
	}
	if o.LogLevel != "" {
		base.Log.Level = o.LogLevel
	}
	base.Log.Output = stderr

	dir, keep := o.DataDir, o.DataDir != ""
	if !keep {
		if dir, err = os.MkdirTemp("", "cairn-local-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	clients, peers, err := localLayout(dir, keep, o.Host, o.BasePort)
	if err != nil {
		return err
	}
	var initial []string
	for i, name := range localMembers {
		initial = append(initial, name+"="+peers[i])
	}

	var servers []*server.Server
	defer func() {
		if serr := shutdownAll(servers); err == nil {
			err = serr
		}
		fmt.Fprintln(stderr, "cairn local: stopped")
	}()
	for i, name := range localMembers {
		cfg := base
		cfg.Cluster.MemberName = name
		cfg.Cluster.DataDir = filepath.Join(dir, name)
		cfg.Cluster.ListenClient = clients[i]
		cfg.Cluster.ListenPeer = peers[i]
		cfg.Cluster.AdvertiseClient = ""
		cfg.Cluster.InitialCluster = strings.Join(initial, ",")
		cfg.Cluster.Join = nil
		opts, err := cfg.ServerOptions()
		if err != nil {
			return usageError{err}
		}
		s, err := server.New(opts)
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}
	// Started together, the members find each other listening.
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			if err := s.Start(); err != nil {
				errs[i] = fmt.Errorf("start %s: %w", localMembers[i], err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, s := range servers {
		select {
		case <-s.Ready():
		case <-s.Done():
			return fmt.Errorf("%s stopped: %w", localMembers[i], s.Err())
		case <-ctx.Done():
			return nil
		}
	}

	var eps []string
	var b strings.Builder
	where := dir + ", removed at exit"
	if keep {
		where = dir
	}
	fmt.Fprintf(&b, "cairn local: %d members ready (data in %s)\n", len(servers), where)
	for i, s := range servers {
		eps = append(eps, s.ClientAddr())
		fmt.Fprintf(&b, "  %-7s client %-21s peer %s\n", localMembers[i], s.ClientAddr(), peers[i])
	}
	list := strings.Join(eps, ",")
	fmt.Fprintf(&b, "endpoints: %s\n\n", list)
	fmt.Fprintf(&b, "  cairn --endpoints %s put foo bar\n", list)
	fmt.Fprintf(&b, "  cairn --endpoints %s member list -w table\n", list)
	fmt.Fprintf(&b, "  ETCDCTL_API=3 etcdctl --endpoints %s get foo\n\n", list)
	b.WriteString("Ctrl-C stops the cluster.\n")
	io.WriteString(stdout, b.String())

	failed := make(chan error, len(servers))
	for i, s := range servers {
		go func() {
			<-s.Done()
			failed <- fmt.Errorf("%s stopped: %w", localMembers[i], s.Err())
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-failed:
		return err
	}
}

// layoutFile records, in a kept data directory, the addresses the cluster
// was created with: a member's peer address is part of the cluster's
// membership, so a later run must use the same ones.
const layoutFile = "local.json"

type layout struct {
	Clients []string `json:"clients"`
	Peers   []string `json:"peers"`
}

// localLayout returns the members' client and peer addresses: those
// recorded in a kept data directory, or new ones (recorded if kept).
func localLayout(dir string, keep bool, host string, basePort int) (clients, peers []string, err error) {
	path := filepath.Join(dir, layoutFile)
	if keep {
		b, err := os.ReadFile(path)
		if err == nil {
			var l layout
			if err := json.Unmarshal(b, &l); err != nil || len(l.Clients) != len(localMembers) || len(l.Peers) != len(localMembers) {
				return nil, nil, fmt.Errorf("%s is corrupt (%v): it records the addresses of the cluster in %s", path, err, dir)
			}
			return l.Clients, l.Peers, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, err
		}
	}
	clients, peers, err = localAddrs(host, basePort, len(localMembers))
	if err != nil || !keep {
		return clients, peers, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	b, _ := json.Marshal(layout{Clients: clients, Peers: peers})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return nil, nil, err
	}
	return clients, peers, nil
}

// localAddrs returns the members' client and peer addresses.
func localAddrs(host string, basePort, n int) (clients, peers []string, err error) {
	// Free peer ports are held until all are picked, so that no two
	// members get the same one.
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for i := range n {
		if basePort == 0 {
			l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
			if err != nil {
				return nil, nil, fmt.Errorf("pick a free port on %s: %w", host, err)
			}
			held = append(held, l)
			clients = append(clients, net.JoinHostPort(host, "0"))
			peers = append(peers, l.Addr().String())
			continue
		}
		port := basePort
		if i > 0 {
			port += 10000 * (i + 1)
		}
		clients = append(clients, net.JoinHostPort(host, strconv.Itoa(port)))
		peers = append(peers, net.JoinHostPort(host, strconv.Itoa(port+1)))
	}
	return clients, peers, nil
}

// freePort returns host:port with a port free at the time of the call.
func freePort(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("pick a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// shutdownAll stops the servers together and joins their errors.
func shutdownAll(servers []*server.Server) error {
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() { errs[i] = s.Shutdown() })
	}
	wg.Wait()
	return errors.Join(errs...)
}
