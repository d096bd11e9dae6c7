package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func newLeaseCmd(f *clientFlags) *cobra.Command {
	return newGroupCmd("lease", "Grant, renew, inspect and revoke leases",
		newLeaseGrantCmd(f), newLeaseRevokeCmd(f), newLeaseKeepAliveCmd(f),
		newLeaseTimeToLiveCmd(f), newLeaseListCmd(f))
}

// leaseArg parses the lease ID argument.
func leaseArg(a []string) (clientv3.LeaseID, error) {
	id, err := parseLeaseID(a[0])
	return clientv3.LeaseID(id), err
}

// withLease parses the lease ID argument, then runs fn with it as withClient
// runs its function.
func (f *clientFlags) withLease(cmd *cobra.Command, a []string,
	fn func(cli *clientv3.Client, p *printer, ctx context.Context, id clientv3.LeaseID) error) error {
	id, err := leaseArg(a)
	if err != nil {
		return err
	}
	return f.withClient(cmd, func(cli *clientv3.Client, p *printer, ctx context.Context) error {
		return fn(cli, p, ctx, id)
	})
}

func newLeaseGrantCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "grant TTL",
		Short:   "Grant a lease of TTL seconds and print its ID",
		Example: "  cairn lease grant 60\n  cairn put session/a x --lease <ID>",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ttl, err := strconv.ParseInt(a[0], 10, 64)
			if err != nil || ttl <= 0 {
				return usagef("TTL %q: want a positive number of seconds", a[0])
			}
			return f.withClient(cmd, func(cli *clientv3.Client, p *printer, ctx context.Context) error {
				resp, err := cli.Grant(ctx, ttl)
				if err != nil {
					return err
				}
				return p.result(&pb.LeaseGrantResponse{Header: resp.ResponseHeader, ID: int64(resp.ID), TTL: resp.TTL, Error: resp.Error},
					"lease %016x granted with TTL(%ds)", resp.ID, resp.TTL)
			})
		},
	}
}

func newLeaseRevokeCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a lease, deleting the keys attached to it",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return f.withLease(cmd, a, func(cli *clientv3.Client, p *printer, ctx context.Context, id clientv3.LeaseID) error {
				resp, err := cli.Revoke(ctx, id)
				if err != nil {
					return err
				}
				return p.result((*pb.LeaseRevokeResponse)(resp), "lease %016x revoked", id)
			})
		},
	}
}

func newLeaseKeepAliveCmd(f *clientFlags) *cobra.Command {
	var once bool
	cmd := &cobra.Command{
		Use:   "keep-alive ID",
		Short: "Keep a lease alive until Ctrl-C (or renew it once with --once)",
		Long: `Keep-alive renews a lease and prints each renewal. It runs until Ctrl-C or
SIGTERM (exit code 0), or until the lease expires or is revoked (exit code 1).
With --once it renews the lease once.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			id, err := leaseArg(a)
			if err != nil {
				return err
			}
			print := func(p *printer, resp *clientv3.LeaseKeepAliveResponse) error {
				return p.result(&pb.LeaseKeepAliveResponse{Header: resp.ResponseHeader, ID: int64(resp.ID), TTL: resp.TTL},
					"lease %016x keepalived with TTL(%d)", resp.ID, resp.TTL)
			}
			if once {
				return f.withClient(cmd, func(cli *clientv3.Client, p *printer, ctx context.Context) error {
					resp, err := cli.KeepAliveOnce(ctx, id)
					if err != nil {
						return err
					}
					return print(p, resp)
				})
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cli, err := f.client(ctx)
			if err != nil {
				return interrupted(ctx, err)
			}
			defer cli.Close()
			ch, err := cli.KeepAlive(ctx, id)
			if err != nil {
				return interrupted(ctx, err)
			}
			p := f.printer(cmd)
			for resp := range ch {
				if err := print(p, resp); err != nil {
					return err
				}
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("lease %016x expired or revoked", id)
		},
	}
	cmd.Flags().BoolVar(&once, "once", false, "renew the lease once and exit")
	return cmd
}

func newLeaseTimeToLiveCmd(f *clientFlags) *cobra.Command {
	var keys bool
	cmd := &cobra.Command{
		Use:   "timetolive ID",
		Short: "Print a lease's granted and remaining TTL (and its keys with --keys)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return f.withLease(cmd, a, func(cli *clientv3.Client, p *printer, ctx context.Context, id clientv3.LeaseID) error {
				var opts []clientv3.LeaseOption
				if keys {
					opts = append(opts, clientv3.WithAttachedKeys())
				}
				resp, err := cli.TimeToLive(ctx, id, opts...)
				if err != nil {
					return err
				}
				if p.isJSON() {
					return p.json(&pb.LeaseTimeToLiveResponse{Header: resp.ResponseHeader, ID: int64(resp.ID),
						TTL: resp.TTL, GrantedTTL: resp.GrantedTTL, Keys: resp.Keys})
				}
				if resp.GrantedTTL == 0 && resp.TTL == -1 {
					p.line("lease %016x already expired", resp.ID)
					return nil
				}
				txt := fmt.Sprintf("lease %016x granted with TTL(%ds), remaining(%ds)", resp.ID, resp.GrantedTTL, resp.TTL)
				if keys {
					ks := make([]string, len(resp.Keys))
					for i, k := range resp.Keys {
						ks[i] = string(k)
					}
					txt += fmt.Sprintf(", attached keys(%v)", ks)
				}
				p.line("%s", txt)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&keys, "keys", false, "also print the keys attached to the lease")
	return cmd
}

func newLeaseListCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the leases",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.withClient(cmd, func(cli *clientv3.Client, p *printer, ctx context.Context) error {
				resp, err := cli.Leases(ctx)
				if err != nil {
					return err
				}
				if p.isJSON() {
					out := &pb.LeaseLeasesResponse{Header: resp.ResponseHeader}
					for _, l := range resp.Leases {
						out.Leases = append(out.Leases, &pb.LeaseStatus{ID: int64(l.ID)})
					}
					return p.json(out)
				}
				p.line("found %d leases", len(resp.Leases))
				for _, l := range resp.Leases {
					p.line("%016x", l.ID)
				}
				return nil
			})
		},
	}
}
