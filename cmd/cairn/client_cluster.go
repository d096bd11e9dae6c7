package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/cairn-db/cairn/server"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/kv"
)

func newMemberCmd(f *clientFlags) *cobra.Command {
	return newGroupCmd("member", "List, add, remove, update and promote members",
		newMemberListCmd(f), newMemberAddCmd(f), newMemberRemoveCmd(f),
		newMemberUpdateCmd(f), newMemberPromoteCmd(f))
}

// memberArg parses a member ID as etcdctl prints it: hexadecimal.
func memberArg(a []string) (uint64, error) {
	id, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(a[0]), "0x"), 16, 64)
	if err != nil {
		return 0, usagef("member ID %q: want a hexadecimal ID as member list prints it", a[0])
	}
	return id, nil
}

// peerURLsFlag checks --peer-urls.
func peerURLsFlag(urls []string) error {
	if len(urls) == 0 {
		return usagef("--peer-urls is required: the new peer address, http://host:port")
	}
	return nil
}

func memberRows(ms []*pb.Member) [][]string {
	var rows [][]string
	for _, m := range ms {
		status := "started"
		if m.Name == "" {
			status = "unstarted"
		}
		rows = append(rows, []string{fmt.Sprintf("%x", m.ID), status, m.Name,
			strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","), strconv.FormatBool(m.IsLearner)})
	}
	return rows
}

func newMemberListCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the members: ID, status, name, peer and client addresses, learner",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.withClient(cmd, func(cli *clientv3.Client, p *printer, ctx context.Context) error {
				resp, err := cli.MemberList(ctx)
				if err != nil {
					return err
				}
				if p.isJSON() {
					return p.json((*pb.MemberListResponse)(resp))
				}
				rows := memberRows(resp.Members)
				if p.isTable() {
					p.table([]string{"id", "status", "name", "peer addrs", "client addrs", "is learner"}, rows)
					return nil
				}
				for _, r := range rows {
					p.line("%s", strings.Join(r, ", "))
				}
				return nil
			})
		},
	}
}

func newMemberAddCmd(f *clientFlags) *cobra.Command {
	var (
		peerURLs []string
		learner  bool
	)
	cmd := &cobra.Command{
		Use:   "add NAME --peer-urls URL",
		Short: "Add a member (then start it with the printed settings)",
		Long: `Add adds a member to the cluster, as a voter or with --learner as a learner.
It prints the new member's ID and the settings to start it with: an empty data
directory, the peer address given, and the cluster to join.`,
		Example: "  cairn member add n4 --peer-urls http://10.0.0.4:2380",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := peerURLsFlag(peerURLs); err != nil {
				return err
			}
			return f.withClient(cmd, func(cli *clientv3.Client, p *printer, ctx context.Context) error {
				var (
					resp *clientv3.MemberAddResponse
					err  error
				)
				if learner {
					resp, err = cli.MemberAddAsLearner(ctx, peerURLs)
				} else {
					resp, err = cli.MemberAdd(ctx, peerURLs)
				}
				if err != nil {
					return err
				}
				if p.isJSON() {
					return p.json((*pb.MemberAddResponse)(resp))
				}
				as := " "
				if learner {
					as = " as learner "
				}
				p.line("Member %16x added%sto cluster %16x", resp.Member.ID, as, resp.Header.ClusterId)
				var join []string
				for _, m := range resp.Members {
					for _, u := range m.ClientURLs {
						join = append(join, endpointAddr(u))
					}
				}
				p.line("")
				p.line("CAIRN_CLUSTER_MEMBER_NAME=%q", a[0])
				p.line("CAIRN_CLUSTER_LISTEN_PEER=%q", endpointAddr(peerURLs[0]))
				p.line("CAIRN_CLUSTER_JOIN=%q", strings.Join(join, ","))
				return nil
			})
		},
	}
	cmd.Flags().StringSliceVar(&peerURLs, "peer-urls", nil, "the new member's peer address, http://host:port")
	cmd.Flags().BoolVar(&learner, "learner", false, "add the member as a learner (a non-voting member; promote it later)")
	return cmd
}

// memberResponse is the answer to a change of one member.
type memberResponse interface {
	proto.Message
	GetHeader() *pb.ResponseHeader
}

// changeMember runs a command that changes the member whose ID is a's: check
// (if any) vets the rest of the command line before anything is sent, change
// makes the request, and the answer is printed as etcdctl does, "Member ID
// <done> cluster CLUSTER-ID", or as JSON.
func (f *clientFlags) changeMember(cmd *cobra.Command, a []string, check func() error, done string,
	change func(ctx context.Context, cli *clientv3.Client, id uint64) (memberResponse, error)) error {
	id, err := memberArg(a)
	if err != nil {
		return err
	}
	if check != nil {
		if err := check(); err != nil {
			return err
		}
	}
	return f.withClient(cmd, func(cli *clientv3.Client, p *printer, ctx context.Context) error {
		resp, err := change(ctx, cli, id)
		if err != nil {
			return err
		}
		return p.result(resp, "Member %16x %s cluster %16x", id, done, resp.GetHeader().GetClusterId())
	})
}

func newMemberRemoveCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a member",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return f.changeMember(cmd, a, nil, "removed from", func(ctx context.Context, cli *clientv3.Client, id uint64) (memberResponse, error) {
				resp, err := cli.MemberRemove(ctx, id)
				return (*pb.MemberRemoveResponse)(resp), err
			})
		},
	}
}

func newMemberUpdateCmd(f *clientFlags) *cobra.Command {
	var peerURLs []string
	cmd := &cobra.Command{
		Use:   "update ID --peer-urls URL",
		Short: "Change a member's peer address",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			check := func() error { return peerURLsFlag(peerURLs) }
			return f.changeMember(cmd, a, check, "updated in", func(ctx context.Context, cli *clientv3.Client, id uint64) (memberResponse, error) {
				resp, err := cli.MemberUpdate(ctx, id, peerURLs)
				return (*pb.MemberUpdateResponse)(resp), err
			})
		},
	}
	cmd.Flags().StringSliceVar(&peerURLs, "peer-urls", nil, "the member's new peer address, http://host:port")
	return cmd
}

func newMemberPromoteCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "promote ID",
		Short: "Promote a learner to a voting member",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return f.changeMember(cmd, a, nil, "promoted in", func(ctx context.Context, cli *clientv3.Client, id uint64) (memberResponse, error) {
				resp, err := cli.MemberPromote(ctx, id)
				return (*pb.MemberPromoteResponse)(resp), err
			})
		},
	}
}

// endpointStatus is one endpoint's status or why it has none.
type endpointStatus struct {
	Endpoint string
	Status   *pb.StatusResponse
	Err      error
}

func newStatusCmd(f *clientFlags) *cobra.Command {
	var cluster bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the status of every endpoint",
		Long: `Status asks every endpoint (--endpoints, or with --cluster every member's
client URL) for its status: member ID, version, database size, whether it
leads, whether it is a learner, raft term, index and applied index, and
errors (alarms). An endpoint that does not answer is reported on standard
error and makes the exit code 1 (3 if none answers).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cli, err := f.client(cmd.Context())
			if err != nil {
				return err
			}
			defer cli.Close()
			eps := f.endpoints
			if cluster {
				ctx, cancel := f.requestCtx(cmd.Context())
				resp, err := cli.MemberList(ctx)
				cancel()
				if err != nil {
					return err
				}
				eps = nil
				for _, m := range resp.Members {
					eps = append(eps, m.ClientURLs...)
				}
			}
			var sts []endpointStatus
			failed := 0
			for _, ep := range eps {
				ctx, cancel := f.requestCtx(cmd.Context())
				resp, err := cli.Status(ctx, ep)
				cancel()
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "Failed to get the status of endpoint %s (%v)\n", ep, err)
					failed++
					continue
				}
				sts = append(sts, endpointStatus{Endpoint: ep, Status: (*pb.StatusResponse)(resp)})
			}
			if err := printStatus(f.printer(cmd), sts); err != nil {
				return err
			}
			switch {
			case failed == 0:
				return nil
			case failed == len(eps):
				return unreachableError{fmt.Errorf("no endpoint answered (%d of %d)", failed, len(eps))}
			}
			return fmt.Errorf("%d of %d endpoints did not answer", failed, len(eps))
		},
	}
	cmd.Flags().BoolVar(&cluster, "cluster", false, "ask every member of the cluster, not only --endpoints")
	return cmd
}

func printStatus(p *printer, sts []endpointStatus) error {
	if p.isJSON() {
		var out []map[string]json.RawMessage
		for _, st := range sts {
			b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(st.Status)
			if err != nil {
				return err
			}
			ep, _ := json.Marshal(st.Endpoint)
			out = append(out, map[string]json.RawMessage{"Endpoint": ep, "Status": b})
		}
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		p.line("%s", b)
		return nil
	}
	var rows [][]string
	for _, st := range sts {
		s := st.Status
		rows = append(rows, []string{st.Endpoint, fmt.Sprintf("%x", s.Header.MemberId), s.Version,
			humanBytes(s.DbSize), strconv.FormatBool(s.Leader == s.Header.MemberId), strconv.FormatBool(s.IsLearner),
			fmt.Sprint(s.RaftTerm), fmt.Sprint(s.RaftIndex), fmt.Sprint(s.RaftAppliedIndex), strings.Join(s.Errors, ", ")})
	}
	if p.isTable() {
		p.table([]string{"endpoint", "id", "version", "db size", "is leader", "is learner", "raft term",
			"raft index", "raft applied index", "errors"}, rows)
		return nil
	}
	for _, r := range rows {
		p.line("%s", strings.Join(r, ", "))
	}
	return nil
}

func newSnapshotCmd(f *clientFlags) *cobra.Command {
	return newGroupCmd("snapshot", "Save a snapshot of the key-value store, or start a new cluster from one",
		newSnapshotSaveCmd(f), newSnapshotRestoreCmd())
}

func newSnapshotRestoreCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "restore FILE --data-dir DIR",
		Short: "Prepare a new member's data directory from a snapshot file",
		Long: `Restore checks FILE (a snapshot saved by 'cairn snapshot save' or 'etcdctl
snapshot save' from cairn) and loads it into DIR, which must be new or empty.
Then start the member with 'cairn serve --data-dir DIR ...'. For a cluster,
restore the same file into each member's directory and start them with the
same --initial-cluster: they form a new cluster holding the snapshot's data,
its revisions continuing from the snapshot's.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if dataDir == "" {
				return usageError{fmt.Errorf("%s: --data-dir is required", cmd.CommandPath())}
			}
			info, err := server.RestoreSnapshot(a[0], dataDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s into %s: revision %d, compacted at %d\n", a[0], dataDir, info.Rev, info.CompactRev)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the new member's data directory")
	return cmd
}

func newSnapshotSaveCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "save FILE",
		Short: "Save a snapshot of the key-value store from a member to FILE",
		Long: `Save streams a point-in-time snapshot of the key-value store from one of the
endpoints into FILE. FILE appears only once the snapshot is complete, checked
(its SHA-256 and its own checksums) and on disk: it is written to FILE.part,
synced, checked, then renamed. It is not bounded by
--command-timeout; Ctrl-C stops it.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cli, err := f.client(ctx)
			if err != nil {
				return err
			}
			defer cli.Close()
			resp, err := cli.SnapshotWithVersion(ctx)
			if err != nil {
				return err
			}
			defer resp.Snapshot.Close()
			n, err := writeFileAtomic(a[0], resp.Snapshot)
			if err != nil {
				return err
			}
			p := f.printer(cmd)
			if p.isJSON() {
				b, err := json.Marshal(map[string]any{"file": a[0], "bytes": n, "revision": resp.Header.GetRevision(),
					"member_id": fmt.Sprintf("%x", resp.Header.GetMemberId()), "version": resp.Version})
				if err != nil {
					return err
				}
				p.line("%s", b)
				return nil
			}
			p.line("Snapshot saved at %s", a[0])
			return nil
		},
	}
}

// writeFileAtomic copies a backup stream from r into path through
// path.part, and checks it (SHA-256 and stream checks, kv.VerifyBackup):
// the file appears complete, checked and synced, or not at all.
func writeFileAtomic(path string, r io.Reader) (n int64, err error) {
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
	if err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(part)
		}
	}()
	if n, err = io.Copy(f, r); err != nil {
		return n, fmt.Errorf("snapshot: receive: %w", err)
	}
	if n == 0 {
		return 0, errors.New("snapshot: the member sent an empty snapshot")
	}
	if err = f.Sync(); err != nil {
		return n, fmt.Errorf("snapshot: %w", err)
	}
	if _, err = f.Seek(0, io.SeekStart); err != nil {
		return n, fmt.Errorf("snapshot: %w", err)
	}
	if _, err = kv.VerifyBackup(bufio.NewReader(f)); err != nil {
		return n, fmt.Errorf("snapshot: the snapshot received (%d bytes) failed its checks: %w", n, err)
	}
	if err = f.Close(); err != nil {
		return n, fmt.Errorf("snapshot: %w", err)
	}
	if err = os.Rename(part, path); err != nil {
		return n, fmt.Errorf("snapshot: %w", err)
	}
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		d.Sync()
		d.Close()
	}
	return n, nil
}
