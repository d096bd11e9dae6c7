package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// Exit codes of every cairn command. The client commands document them in
// their help (exitCodesHelp).
const (
	exitOK          = 0 // success; a get that finds nothing is a success
	exitError       = 1 // the cluster answered with an error, or the command failed
	exitUsage       = 2 // bad flag, argument or input; nothing was sent
	exitUnreachable = 3 // no endpoint could be reached (or the connection was lost)
)

const exitCodesHelp = `Exit codes:
  0  success (a get that finds no key is a success, with empty output)
  1  the cluster answered with an error (printed as "Error: <message>")
  2  bad usage: an unknown flag, a bad argument or malformed input; nothing was sent
  3  the cluster could not be reached within --dial-timeout, or the connection was lost`

// cliMain runs the cairn command line with args (without the program name)
// and returns the process's exit code (exitOK ... exitUnreachable). A client
// command's error goes to stderr as etcdctl prints it, "Error: <message>";
// other commands' as printError writes them. ctx ends long-running commands
// (watch, lease keep-alive, snapshot save, local) as SIGINT or SIGTERM do.
func cliMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if isClientCmd(cmd) {
		fmt.Fprintln(stderr, "Error:", err) // as etcdctl
	} else {
		printError(stderr, err)
	}
	if code == exitUsage && cmd != nil {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// clientAnnotation marks the commands newClientCmds returns.
const clientAnnotation = "cairn.client"

// isClientCmd reports whether cmd is one of newClientCmds' or under one.
func isClientCmd(cmd *cobra.Command) bool {
	for ; cmd != nil; cmd = cmd.Parent() {
		if cmd.Annotations[clientAnnotation] != "" {
			return true
		}
	}
	return false
}

// usageError is a bad command line or input: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// unreachableError is a cluster that could not be reached: exit code 3.
type unreachableError struct{ err error }

func (e unreachableError) Error() string { return e.err.Error() }
func (e unreachableError) Unwrap() error { return e.err }

// cobraUsage lists how cobra's own usage errors begin; cobra has no error
// types for them.
var cobraUsage = []string{
	"unknown command", "unknown flag", "unknown shorthand flag", "invalid argument",
	"flag needs an argument", "bad flag syntax", "required flag", "accepts ", "requires ",
	"if any flags in the group",
}

// exitCode maps an error a command returned to the process's exit code.
func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	var un unreachableError
	if errors.As(err, &un) {
		return exitUnreachable
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return exitError // an answer from the cluster, whatever its code
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unavailable {
		return exitUnreachable
	}
	for _, p := range cobraUsage {
		if strings.HasPrefix(err.Error(), p) {
			return exitUsage
		}
	}
	return exitError
}

// usageArgs wraps a cobra argument check so that its error is a usage error.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{fmt.Errorf("%s: %w", cmd.CommandPath(), err)}
		}
		return nil
	}
}

// clientFlags are the flags every client command takes.
type clientFlags struct {
	endpoints      []string
	dialTimeout    time.Duration
	commandTimeout time.Duration
	writeOut       string
}

// writeOutFormats are the values of --write-out.
var writeOutFormats = []string{"simple", "json", "table"}

func (f *clientFlags) register(fs *pflag.FlagSet) {
	fs.StringSliceVar(&f.endpoints, "endpoints", []string{"127.0.0.1:2379"}, "client addresses of the cluster, host:port or http://host:port, comma-separated")
	fs.DurationVar(&f.dialTimeout, "dial-timeout", 2*time.Second, "how long to try reaching an endpoint before giving up (exit code 3)")
	fs.DurationVar(&f.commandTimeout, "command-timeout", 5*time.Second, "how long a request may take (watch, lease keep-alive and snapshot save run until done)")
	fs.StringVarP(&f.writeOut, "write-out", "w", "simple", "output format: "+strings.Join(writeOutFormats, ", ")+" (simple is etcdctl's plain text; json the protobuf responses; table aligned columns)")
}

// check validates the flags before anything is sent.
func (f *clientFlags) check() error {
	if !slices.Contains(writeOutFormats, f.writeOut) {
		return usagef("--write-out %q: must be one of %s", f.writeOut, strings.Join(writeOutFormats, ", "))
	}
	if len(f.endpoints) == 0 {
		return usagef("--endpoints is empty: give at least one host:port")
	}
	for _, ep := range f.endpoints {
		if _, _, err := net.SplitHostPort(endpointAddr(ep)); err != nil {
			return usagef("--endpoints: %q is not host:port or http://host:port", ep)
		}
	}
	if f.dialTimeout <= 0 || f.commandTimeout <= 0 {
		return usagef("--dial-timeout and --command-timeout must be positive")
	}
	return nil
}

// client connects to the cluster: it returns once a connection to one of
// the endpoints is up, or an unreachableError after --dial-timeout.
func (f *clientFlags) client(ctx context.Context) (*clientv3.Client, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   f.endpoints,
		DialTimeout: f.dialTimeout,
		Logger:      zap.NewNop(),
		Context:     ctx,
	})
	if err != nil {
		return nil, unreachableError{fmt.Errorf("connect to %s: %w", strings.Join(f.endpoints, ","), err)}
	}
	if err := f.waitConnected(ctx, cli); err != nil {
		cli.Close()
		return nil, err
	}
	return cli, nil
}

// waitConnected waits until the client's connection is up (to any endpoint).
func (f *clientFlags) waitConnected(ctx context.Context, cli *clientv3.Client) error {
	conn := cli.ActiveConnection()
	dctx, cancel := context.WithTimeout(ctx, f.dialTimeout)
	defer cancel()
	conn.Connect()
	for {
		s := conn.GetState()
		if s == connectivity.Ready {
			return nil
		}
		if !conn.WaitForStateChange(dctx, s) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return unreachableError{fmt.Errorf("cannot reach the cluster at %s within --dial-timeout %v%s",
				strings.Join(f.endpoints, ","), f.dialTimeout, f.probe())}
		}
	}
}

// probe tells why the endpoints cannot be reached, as far as a TCP
// connection attempt tells.
func (f *clientFlags) probe() string {
	var why []string
	for _, ep := range f.endpoints {
		c, err := net.DialTimeout("tcp", endpointAddr(ep), time.Second)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		c.Close()
		why = append(why, endpointAddr(ep)+" accepts connections but does not answer gRPC")
	}
	return ": " + strings.Join(why, "; ")
}

// endpointAddr strips a URL scheme from an endpoint.
func endpointAddr(ep string) string {
	if _, rest, ok := strings.Cut(ep, "://"); ok {
		return strings.TrimSuffix(rest, "/")
	}
	return ep
}

// requestCtx bounds one request by --command-timeout.
func (f *clientFlags) requestCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, f.commandTimeout)
}

// withClient connects, runs fn with a request context, and closes.
func (f *clientFlags) withClient(cmd *cobra.Command, fn func(cli *clientv3.Client, p *printer, ctx context.Context) error) error {
	cli, err := f.client(cmd.Context())
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := f.requestCtx(cmd.Context())
	defer cancel()
	return f.lost(cli, fn(cli, f.printer(cmd), ctx))
}

// lost turns a request that timed out because the connection went down
// into an unreachableError.
func (f *clientFlags) lost(cli *clientv3.Client, err error) error {
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && status.Code(err) != codes.DeadlineExceeded {
		return err
	}
	if cli.ActiveConnection().GetState() == connectivity.Ready {
		return err
	}
	return unreachableError{fmt.Errorf("lost the connection to the cluster (%s): %w%s", strings.Join(f.endpoints, ","), err, f.probe())}
}

// printer writes responses in the --write-out format.
func (f *clientFlags) printer(cmd *cobra.Command) *printer {
	return &printer{w: cmd.OutOrStdout(), format: f.writeOut}
}

// newClientCmds returns the client commands and `local`, for the root
// command.
func newClientCmds() []*cobra.Command {
	f := &clientFlags{}
	cmds := []*cobra.Command{
		newPutCmd(f), newGetCmd(f), newDelCmd(f), newWatchCmd(f), newTxnCmd(f),
		newLeaseCmd(f), newMemberCmd(f), newStatusCmd(f), newSnapshotCmd(f),
	}
	for _, c := range cmds {
		f.register(c.PersistentFlags())
		withExitCodes(c)
	}
	cmds = append(cmds, newLocalCmd())
	for _, c := range cmds {
		c.Annotations = map[string]string{clientAnnotation: "true"}
	}
	return cmds
}

// newGroupCmd is a command whose work is done by its subcommands: alone it
// prints its help; with an unknown subcommand it is a usage error.
func newGroupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args: func(cmd *cobra.Command, a []string) error {
			if len(a) > 0 {
				return usagef("unknown command %q for %q", a[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(subs...)
	return c
}

// withExitCodes appends the exit codes to the help of c and its
// subcommands.
func withExitCodes(c *cobra.Command) {
	long := c.Long
	if long == "" {
		long = c.Short + "."
	}
	c.Long = long + "\n\n" + exitCodesHelp + "\n"
	for _, sub := range c.Commands() {
		withExitCodes(sub)
	}
}
