package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/server"
)

// opRunner receives the request a put, get or del command line describes:
// the client commands send it, txn collects it. policy is the read policy a
// get asks for through the gRPC metadata (server.ReadConsistencyKey), ""
// for none: the member's default, or eventual if op is serializable.
type opRunner func(cmd *cobra.Command, op clientv3.Op, policy engine.ReadPolicy, out getOutput) error

// runOp sends one request and prints its response.
func (f *clientFlags) runOp(cmd *cobra.Command, op clientv3.Op, policy engine.ReadPolicy, out getOutput) error {
	cli, err := f.client(cmd.Context())
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := f.requestCtx(cmd.Context())
	defer cancel()
	if policy != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, server.ReadConsistencyKey, policy.ShortName())
	}
	resp, err := cli.Do(ctx, op)
	if err != nil {
		return f.lost(cli, err)
	}
	p := f.printer(cmd)
	switch {
	case op.IsPut():
		return p.put((*pb.PutResponse)(resp.Put()))
	case op.IsGet():
		return p.get((*pb.RangeResponse)(resp.Get()), out)
	default:
		return p.del((*pb.DeleteRangeResponse)(resp.Del()))
	}
}

func newPutCmd(f *clientFlags) *cobra.Command { return putCommand(true, f.runOp) }
func newGetCmd(f *clientFlags) *cobra.Command { return getCommand(f.runOp) }
func newDelCmd(f *clientFlags) *cobra.Command { return delCommand(f.runOp) }

// putCommand is `put`; with valueFromStdin a missing VALUE is read from
// standard input (not inside a txn).
func putCommand(valueFromStdin bool, run opRunner) *cobra.Command {
	var (
		lease                    string
		prevKV, ignoreV, ignoreL bool
	)
	cmd := &cobra.Command{
		Use:   "put KEY [VALUE]",
		Short: "Put a key (VALUE is read from standard input if missing)",
		Long: `Put sets KEY to VALUE, optionally attached to a lease. It prints OK, and with
--prev-kv the key and value it replaced.`,
		Example: "  cairn put greeting hello\n  cairn put config/a 1 --lease 694d7f2ab3c6f801\n  cairn put blob < file",
		Args:    usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var opts []clientv3.OpOption
			if lease != "" {
				id, err := parseLeaseID(lease)
				if err != nil {
					return err
				}
				opts = append(opts, clientv3.WithLease(clientv3.LeaseID(id)))
			}
			if prevKV {
				opts = append(opts, clientv3.WithPrevKV())
			}
			if ignoreL {
				if lease != "" {
					return usagef("--lease and --ignore-lease cannot be used together")
				}
				opts = append(opts, clientv3.WithIgnoreLease())
			}
			var value string
			switch {
			case ignoreV:
				if len(a) > 1 {
					return usagef("VALUE cannot be given with --ignore-value")
				}
				opts = append(opts, clientv3.WithIgnoreValue())
			case len(a) == 2:
				value = a[1]
			case !valueFromStdin:
				return usagef("put needs KEY and VALUE")
			default:
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return usagef("read VALUE from standard input: %v", err)
				}
				value = string(b)
			}
			return run(cmd, clientv3.OpPut(a[0], value, opts...), "", getOutput{})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&lease, "lease", "", "attach the key to this lease (hexadecimal ID, as lease grant prints it)")
	fl.BoolVar(&prevKV, "prev-kv", false, "print the key-value pair the put replaced")
	fl.BoolVar(&ignoreV, "ignore-value", false, "keep the current value (changes only the lease)")
	fl.BoolVar(&ignoreL, "ignore-lease", false, "keep the current lease (changes only the value)")
	return cmd
}

// readConsistencies are the values of get's --consistency and how each is
// asked for: the policy sent in the gRPC metadata key
// server.ReadConsistencyKey, and the options added to the request. eventual
// is etcd's serializable flag, which every member honours whatever its
// raft.read_consistency settings; linearizable and lease go through the
// metadata (a member with allow_client_override = false refuses a policy
// other than its default). A new level is one more entry here.
var readConsistencies = []struct {
	name    string
	aliases []string // etcdctl's spellings
	policy  engine.ReadPolicy
	opts    []clientv3.OpOption
}{
	{name: "linearizable", aliases: []string{"l"}, policy: engine.LinearizableRead},
	{name: "lease", policy: engine.LeaseRead},
	{name: "eventual", aliases: []string{"s", "serializable"}, opts: []clientv3.OpOption{clientv3.WithSerializable()}},
}

func consistencyNames() string {
	var names []string
	for _, c := range readConsistencies {
		names = append(names, c.name)
	}
	return strings.Join(names, ", ")
}

// consistencyOpts returns what --consistency name sends; "" (the flag not
// given) sends nothing, which reads with the member's default policy.
func consistencyOpts(name string) (engine.ReadPolicy, []clientv3.OpOption, error) {
	if name == "" {
		return "", nil, nil
	}
	for _, c := range readConsistencies {
		if name == c.name || slices.Contains(c.aliases, name) {
			return c.policy, c.opts, nil
		}
	}
	return "", nil, usagef("--consistency %q: must be one of %s", name, consistencyNames())
}

// rangeOpts turns KEY [RANGE_END], --prefix and --from-key into the key and
// range options of a request.
func rangeOpts(a []string, prefix, fromKey bool) ([]clientv3.OpOption, error) {
	switch {
	case prefix && fromKey:
		return nil, usagef("--prefix and --from-key cannot be used together")
	case len(a) == 2 && (prefix || fromKey):
		return nil, usagef("RANGE_END cannot be given with --prefix or --from-key")
	case prefix:
		return []clientv3.OpOption{clientv3.WithPrefix()}, nil
	case fromKey:
		return []clientv3.OpOption{clientv3.WithFromKey()}, nil
	case len(a) == 2:
		return []clientv3.OpOption{clientv3.WithRange(a[1])}, nil
	}
	return nil, nil
}

var (
	sortOrders  = map[string]clientv3.SortOrder{"ASCEND": clientv3.SortAscend, "DESCEND": clientv3.SortDescend}
	sortTargets = map[string]clientv3.SortTarget{
		"CREATE": clientv3.SortByCreateRevision, "KEY": clientv3.SortByKey, "MODIFY": clientv3.SortByModRevision,
		"VALUE": clientv3.SortByValue, "VERSION": clientv3.SortByVersion,
	}
)

func getCommand(run opRunner) *cobra.Command {
	var (
		prefix, fromKey, keysOnly, countOnly, valueOnly bool
		rev, limit                                      int64
		consistency, order, sortBy                      string
	)
	cmd := &cobra.Command{
		Use:   "get KEY [RANGE_END]",
		Short: "Get a key or a range of keys",
		Long: `Get prints each key found and its value, on two lines, as etcdctl does. A key
that does not exist prints nothing and is not an error.

RANGE_END makes the range [KEY, RANGE_END); --prefix every key starting with KEY
(every key if KEY is ""); --from-key every key from KEY on.`,
		Example: "  cairn get greeting\n  cairn get config/ --prefix --keys-only\n  cairn get a --rev 5 -w json",
		Args:    usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			opts, err := rangeOpts(a, prefix, fromKey)
			if err != nil {
				return err
			}
			policy, copts, err := consistencyOpts(consistency)
			if err != nil {
				return err
			}
			opts = append(opts, copts...)
			if rev < 0 || limit < 0 {
				return usagef("--rev and --limit cannot be negative")
			}
			if rev > 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			if limit > 0 {
				opts = append(opts, clientv3.WithLimit(limit))
			}
			if keysOnly {
				opts = append(opts, clientv3.WithKeysOnly())
			}
			if countOnly {
				opts = append(opts, clientv3.WithCountOnly())
			}
			if order != "" || sortBy != "" {
				o, ok := sortOrders[strings.ToUpper(orDefault(order, "ASCEND"))]
				if !ok {
					return usagef("--order %q: must be ASCEND or DESCEND", order)
				}
				t, ok := sortTargets[strings.ToUpper(orDefault(sortBy, "KEY"))]
				if !ok {
					return usagef("--sort-by %q: must be CREATE, KEY, MODIFY, VALUE or VERSION", sortBy)
				}
				opts = append(opts, clientv3.WithSort(t, o))
			}
			return run(cmd, clientv3.OpGet(a[0], opts...), policy, getOutput{countOnly: countOnly, valueOnly: valueOnly})
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&prefix, "prefix", false, "get every key starting with KEY")
	fl.BoolVar(&fromKey, "from-key", false, "get every key from KEY on (KEY and greater)")
	fl.Int64Var(&rev, "rev", 0, "read at this revision (0: the latest)")
	fl.Int64Var(&limit, "limit", 0, "return at most this many keys (0: no limit)")
	fl.BoolVar(&keysOnly, "keys-only", false, "get only the keys")
	fl.BoolVar(&countOnly, "count-only", false, "print only the number of keys")
	fl.BoolVar(&valueOnly, "print-value-only", false, "print only the values")
	fl.StringVar(&consistency, "consistency", "", "read consistency: "+consistencyNames()+
		" (default: the member's raft.read_consistency.default_policy, linearizable unless configured otherwise;"+
		" lease skips the quorum round on a leader that holds a lease; eventual is etcd's serializable:"+
		" the member's local state, possibly stale)")
	fl.StringVar(&order, "order", "", "sort order: ASCEND or DESCEND")
	fl.StringVar(&sortBy, "sort-by", "", "sort by CREATE, KEY, MODIFY, VALUE or VERSION")
	return cmd
}

func delCommand(run opRunner) *cobra.Command {
	var prefix, fromKey, prevKV bool
	cmd := &cobra.Command{
		Use:   "del KEY [RANGE_END]",
		Short: "Delete a key or a range of keys",
		Long: `Del deletes KEY, or the range [KEY, RANGE_END), or with --prefix every key
starting with KEY, and prints how many keys it deleted.`,
		Example: "  cairn del greeting\n  cairn del config/ --prefix --prev-kv",
		Args:    usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			opts, err := rangeOpts(a, prefix, fromKey)
			if err != nil {
				return err
			}
			if prevKV {
				opts = append(opts, clientv3.WithPrevKV())
			}
			return run(cmd, clientv3.OpDelete(a[0], opts...), "", getOutput{})
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&prefix, "prefix", false, "delete every key starting with KEY")
	fl.BoolVar(&fromKey, "from-key", false, "delete every key from KEY on")
	fl.BoolVar(&prevKV, "prev-kv", false, "print the deleted key-value pairs")
	return cmd
}

func newWatchCmd(f *clientFlags) *cobra.Command {
	var (
		prefix, prevKV bool
		rev            int64
		maxEvents      int
	)
	cmd := &cobra.Command{
		Use:   "watch KEY [RANGE_END]",
		Short: "Watch a key or a range of keys and print every change",
		Long: `Watch prints every change to KEY (or the range, or with --prefix every key
starting with KEY) as it happens: PUT or DELETE, then the key and its value. It
runs until Ctrl-C or SIGTERM (exit code 0), until --max-events events were
printed, or until the server cancels the watch, e.g. because --rev was
compacted (exit code 1).`,
		Example: "  cairn watch config/ --prefix\n  cairn watch greeting --rev 1 --max-events 3",
		Args:    usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			opts, err := rangeOpts(a, prefix, false)
			if err != nil {
				return err
			}
			if rev < 0 || maxEvents < 0 {
				return usagef("--rev and --max-events cannot be negative")
			}
			if rev > 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			if prevKV {
				opts = append(opts, clientv3.WithPrevKV())
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cli, err := f.client(ctx)
			if err != nil {
				return interrupted(ctx, err)
			}
			defer cli.Close()
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			defer cancel()
			p := f.printer(cmd)
			seen := 0
			for resp := range cli.Watch(wctx, a[0], opts...) {
				if err := resp.Err(); err != nil {
					if resp.CompactRevision != 0 {
						return fmt.Errorf("watch canceled: %w (compacted up to revision %d)", err, resp.CompactRevision)
					}
					return fmt.Errorf("watch canceled: %w", err)
				}
				if len(resp.Events) == 0 {
					continue // created or progress notification
				}
				if maxEvents > 0 && seen+len(resp.Events) > maxEvents {
					resp.Events = resp.Events[:maxEvents-seen]
				}
				seen += len(resp.Events)
				if err := p.watch(&pb.WatchResponse{Header: resp.Header, Events: resp.Events}); err != nil {
					return err
				}
				if maxEvents > 0 && seen == maxEvents {
					return nil
				}
			}
			if ctx.Err() != nil {
				return nil // stopped by a signal or the caller
			}
			return errors.New("watch closed by the client")
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&prefix, "prefix", false, "watch every key starting with KEY")
	fl.Int64Var(&rev, "rev", 0, "start at this revision, replaying history (0: from now on)")
	fl.BoolVar(&prevKV, "prev-kv", false, "print the key-value pair before each change")
	fl.IntVar(&maxEvents, "max-events", 0, "exit after printing this many events (0: run until stopped)")
	return cmd
}

// interrupted makes an error caused by a signal a clean stop.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func newTxnCmd(f *clientFlags) *cobra.Command {
	var interactive bool
	cmd := &cobra.Command{
		Use:   "txn",
		Short: "Run a transaction read from standard input (etcdctl's txn format)",
		Long: `Txn reads a transaction from standard input, in etcdctl's format: compares, one
per line, then a blank line; the requests to run if every compare holds, then a
blank line; the requests to run otherwise. It prints SUCCESS or FAILURE, then
each request's result after a blank line.

A compare is TARGET("KEY") OP "VALUE", where TARGET is value (val), version
(ver), create (c), mod (m) or lease, and OP is =, !=, < or >; numbers and lease
IDs (hexadecimal) are quoted too. A request is a put, get or del command line,
with its flags.`,
		Example: `  cairn txn <<'EOF'
  mod("config/a") > "0"

  put config/a 2
  get config/a

  put config/a 1
  EOF`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			prompt := func(s string) {
				if interactive {
					fmt.Fprintln(cmd.OutOrStdout(), s)
				}
			}
			r := newLineReader(cmd.InOrStdin())
			prompt("compares:")
			var cmps []clientv3.Cmp
			for line := range r.section() {
				c, err := parseCompare(line)
				if err != nil {
					return usageError{err}
				}
				cmps = append(cmps, c)
			}
			prompt("success requests (get, put, del):")
			then, err := readTxnOps(r)
			if err != nil {
				return err
			}
			prompt("failure requests (get, put, del):")
			els, err := readTxnOps(r)
			if err != nil {
				return err
			}
			if r.err != nil {
				return usagef("read standard input: %v", r.err)
			}
			cli, err := f.client(cmd.Context())
			if err != nil {
				return err
			}
			defer cli.Close()
			ctx, cancel := f.requestCtx(cmd.Context())
			defer cancel()
			resp, err := cli.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
			if err != nil {
				return f.lost(cli, err)
			}
			return f.printer(cmd).txn((*pb.TxnResponse)(resp))
		},
	}
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "prompt for each section")
	return cmd
}

func readTxnOps(r *lineReader) ([]clientv3.Op, error) {
	var ops []clientv3.Op
	for line := range r.section() {
		op, err := parseTxnOp(line)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// parseTxnOp parses a put, get or del request line with the commands'
// own flags.
func parseTxnOp(line string) (clientv3.Op, error) {
	words, err := splitWords(line)
	if err != nil {
		return clientv3.Op{}, usagef("invalid txn request %q: %v", line, err)
	}
	var op *clientv3.Op
	// A txn goes through raft as a whole: a get's policy is not sent (what
	// the txn reads is linearizable anyway).
	collect := func(_ *cobra.Command, o clientv3.Op, _ engine.ReadPolicy, _ getOutput) error {
		op = &o
		return nil
	}
	root := &cobra.Command{Use: "txn", SilenceErrors: true, SilenceUsage: true}
	root.AddCommand(putCommand(false, collect), getCommand(collect), delCommand(collect))
	root.SetArgs(words)
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	root.SetIn(strings.NewReader(""))
	if err := root.Execute(); err != nil {
		return clientv3.Op{}, usagef("invalid txn request %q: %v", line, err)
	}
	if op == nil {
		return clientv3.Op{}, usagef("invalid txn request %q: want a put, get or del request", line)
	}
	return *op, nil
}

// parseCompare parses etcdctl's compare syntax: TARGET("KEY") OP "VALUE".
func parseCompare(line string) (clientv3.Cmp, error) {
	target, rest, ok := strings.Cut(line, "(")
	if !ok {
		return clientv3.Cmp{}, fmt.Errorf("malformed comparison %q: want TARGET(\"KEY\") OP \"VALUE\"", line)
	}
	var key, op, val string
	if n, err := fmt.Sscanf(rest, "%q) %s %q", &key, &op, &val); n != 3 || err != nil {
		return clientv3.Cmp{}, fmt.Errorf("malformed comparison %q: want TARGET(\"KEY\") OP \"VALUE\" with KEY and VALUE quoted", line)
	}
	if !slices.Contains([]string{"=", "!=", "<", ">"}, op) {
		return clientv3.Cmp{}, fmt.Errorf("malformed comparison %q: operator %q must be =, !=, < or >", line, op)
	}
	number := func() (int64, error) {
		v, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid comparison %q: %q is not a number", line, val)
		}
		return v, nil
	}
	switch strings.TrimSpace(target) {
	case "ver", "version":
		v, err := number()
		return clientv3.Compare(clientv3.Version(key), op, v), err
	case "c", "create":
		v, err := number()
		return clientv3.Compare(clientv3.CreateRevision(key), op, v), err
	case "m", "mod":
		v, err := number()
		return clientv3.Compare(clientv3.ModRevision(key), op, v), err
	case "val", "value":
		return clientv3.Compare(clientv3.Value(key), op, val), nil
	case "lease":
		id, err := parseLeaseID(val)
		if err != nil {
			return clientv3.Cmp{}, fmt.Errorf("invalid comparison %q: %v", line, err)
		}
		return clientv3.Compare(clientv3.LeaseValue(key), op, clientv3.LeaseID(id)), nil
	}
	return clientv3.Cmp{}, fmt.Errorf("malformed comparison %q: unknown target %q (want value, version, create, mod or lease)", line, target)
}

// parseLeaseID parses a lease ID as etcdctl prints it: hexadecimal.
func parseLeaseID(s string) (int64, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 64)
	if err != nil {
		return 0, usagef("lease ID %q: want a hexadecimal ID as lease grant prints it", s)
	}
	return int64(v), nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// lineReader reads txn input: sections of lines, each ended by a blank line
// or the end of the input.
type lineReader struct {
	r   *bufio.Reader
	eof bool
	err error // a read error other than io.EOF
}

func newLineReader(r io.Reader) *lineReader { return &lineReader{r: bufio.NewReader(r)} }

// section yields the trimmed lines of the next section.
func (l *lineReader) section() iter.Seq[string] {
	return func(yield func(string) bool) {
		for !l.eof {
			line, err := l.r.ReadString('\n')
			if err != nil {
				l.eof = true
				if err != io.EOF {
					l.err = err
				}
			}
			line = strings.TrimSpace(line)
			if line == "" || !yield(line) {
				return
			}
		}
	}
}

// wordRE splits a txn request line into words as etcdctl does: double-quoted
// strings (Go escapes), single-quoted strings, or runs of non-space.
var wordRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'[^']*'|[^'"\s]\S*[^'"\s]?`)

func splitWords(line string) ([]string, error) {
	words := wordRE.FindAllString(line, -1)
	for i, w := range words {
		switch w[0] {
		case '"':
			u, err := strconv.Unquote(w)
			if err != nil {
				return nil, fmt.Errorf("bad quoted string %s", w)
			}
			words[i] = u
		case '\'':
			words[i] = w[1 : len(w)-1]
		}
	}
	return words, nil
}
