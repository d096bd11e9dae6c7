package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/cairn-db/cairn/config"
	"github.com/cairn-db/cairn/engine"
)

// runMainEnv, when set, makes the test binary run main with the arguments
// it holds (separated by newlines): tests see real exit codes and output.
const runMainEnv = "RUN_CAIRN_MAIN_ARGS"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(runMainEnv); ok {
		os.Args = append([]string{"cairn"}, strings.Split(args, "\n")...)
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m,
		// clientv3's resolver and grpc's balancer close asynchronously after
		// Client.Close.
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/resolver/dns.(*dnsResolver).watcher"),
	)
}

// waitTimeout bounds every wait: a broken server fails a test, never hangs it.
const waitTimeout = 60 * time.Second

// runMain runs the cairn binary (this test binary, as main) with args and
// only the variables of env, and returns its output and exit code.
func runMain(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append([]string{runMainEnv + "=" + strings.Join(args, "\n")}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run cairn %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// logBuffer collects a server's logs and tells waiters when more arrive.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{}, 1)} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// find returns the first JSON log record with message msg.
func (l *logBuffer) find(msg string) map[string]any {
	for line := range strings.SplitSeq(l.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			return rec
		}
	}
	return nil
}

// waitFor waits for a JSON log record with message msg; it fails the test
// if done delivers first (the command returned) or the wait times out.
func (l *logBuffer) waitFor(t *testing.T, msg string, done <-chan error) map[string]any {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		if rec := l.find(msg); rec != nil {
			return rec
		}
		select {
		case <-l.changed:
		case err := <-done:
			t.Fatalf("command returned (%v) before logging %q; logs:\n%s", err, msg, l)
		case <-timer.C:
			t.Fatalf("no %q logged in %v; logs:\n%s", msg, waitTimeout, l)
		}
	}
}

// serveRun is a "cairn serve" running in-process.
type serveRun struct {
	cancel context.CancelFunc
	done   chan error // receives what the command returned
	logs   *logBuffer
	dir    string // its data directory

	once sync.Once
	err  error
}

// startServe runs "cairn serve" with args in-process, on a fresh data
// directory and free ports, logging JSON. It is stopped when the test ends.
func startServe(t *testing.T, args ...string) *serveRun {
	t.Helper()
	r := &serveRun{done: make(chan error, 1), logs: newLogBuffer(), dir: filepath.Join(t.TempDir(), "data")}
	root := newRootCmdEnv(nil)
	root.SetArgs(append([]string{"serve", "--data-dir", r.dir, "--listen-client", "127.0.0.1:0",
		"--listen-peer", "127.0.0.1:0", "--log-format", "json"}, args...))
	root.SetOut(io.Discard)
	root.SetErr(r.logs)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends the command's context and returns what it returned.
func (r *serveRun) stop(t *testing.T) error {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(waitTimeout):
			r.err = errors.New("serve did not stop")
			t.Errorf("serve did not stop in %v; logs:\n%s", waitTimeout, r.logs)
		}
	})
	return r.err
}

// TestServe: cairn serve reaches ready, logs its endpoints, and stops
// cleanly when its context ends.
func TestServe(t *testing.T) {
	r := startServe(t, "--name", "n1", "--cluster-name", "serve-test")
	rec := r.logs.waitFor(t, "serving", r.done)
	for _, k := range []string{"client", "peer"} {
		addr, _ := rec[k].(string)
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
			t.Errorf("serving: %s = %q, want the bound host:port", k, addr)
		}
	}
	if rec["name"] != "n1" || rec["data_dir"] != r.dir {
		t.Errorf("serving record %v: want name n1, data_dir %s", rec, r.dir)
	}
	if _, err := os.Stat(r.dir); err != nil {
		t.Errorf("data dir: %v", err)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("serve returned %v after its context ended; logs:\n%s", err, r.logs)
	}
	if r.logs.find("stopping") == nil {
		t.Errorf("no stopping record; logs:\n%s", r.logs)
	}
}

// TestServeClients: an etcd v3 client writes and reads through cairn serve.
func TestServeClients(t *testing.T) {
	r := startServe(t)
	client, _ := r.logs.waitFor(t, "serving", r.done)["client"].(string)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := cli.Put(ctx, "greeting", "hello"); err != nil {
		t.Fatalf("put: %v", err)
	}
	resp, err := cli.Get(ctx, "greeting")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "hello" {
		t.Fatalf("get greeting: %v", resp.Kvs)
	}
}

// TestServeSignal: serve shuts the server down on a signal.
func TestServeSignal(t *testing.T) {
	cfg := config.Default()
	cfg.Cluster.DataDir = t.TempDir()
	cfg.Cluster.ListenClient = "127.0.0.1:0"
	cfg.Cluster.ListenPeer = "127.0.0.1:0"
	cfg.Log.Format = "json"
	logs := newLogBuffer()
	cfg.Log.Output = logs
	opts, err := cfg.ServerOptions()
	if err != nil {
		t.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- serve(context.Background(), opts, sig) }()
	logs.waitFor(t, "serving", done)
	sig <- syscall.SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after SIGTERM", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("serve did not stop in %v after SIGTERM", waitTimeout)
	}
	if rec := logs.find("stopping"); rec == nil || rec["signal"] != syscall.SIGTERM.String() {
		t.Errorf("stopping record %v, want the signal", rec)
	}
}

// TestServeStartFails: a client address in use fails serve with an error
// naming it.
func TestServeStartFails(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	root := newRootCmdEnv(nil)
	root.SetArgs([]string{"serve", "--data-dir", t.TempDir(), "--listen-client", lis.Addr().String(),
		"--listen-peer", "127.0.0.1:0", "--log-level", "error"})
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err = root.ExecuteContext(ctx)
	if err == nil || !strings.Contains(err.Error(), lis.Addr().String()) {
		t.Fatalf("serve on a used port: %v, want an error naming %s", err, lis.Addr())
	}
}

// TestServeLayers: flags override the environment, which overrides the
// file, which overrides the defaults; flags not given override nothing.
func TestServeLayers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cairn.toml")
	err := os.WriteFile(file, []byte(`
[cluster]
data_dir = "/file"
member_name = "file"
cluster_name_is_not_a_key = false
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	// An unknown key in the file is refused.
	cmd := newServeCmd(nil)
	if err := cmd.ParseFlags([]string{"--config", file}); err != nil {
		t.Fatal(err)
	}
	if _, err := loadServeConfig(cmd, file, nil); err == nil || !strings.Contains(err.Error(), "cluster.cluster_name_is_not_a_key") {
		t.Fatalf("unknown key: %v", err)
	}
	err = os.WriteFile(file, []byte(`
[cluster]
data_dir = "/file"
member_name = "file"
listen_client = "127.0.0.1:1111"
join = ["10.0.0.1:2379"]

[raft.persistence]
strategy = "MemFirst"

[log]
level = "warn"
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	environ := []string{
		"CAIRN_CLUSTER_DATA_DIR=/env",
		"CAIRN_CLUSTER_MEMBER_NAME=env",
		"CAIRN_LOG_FORMAT=json",
		"HOME=/home/x",
	}
	cmd = newServeCmd(environ)
	if err := cmd.ParseFlags([]string{"--config", file, "--data-dir", "/flag", "--join", "10.0.0.2:2379,10.0.0.3:2379"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadServeConfig(cmd, file, environ)
	if err != nil {
		t.Fatal(err)
	}
	def := config.Default()
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"data_dir: flag over env over file", cfg.Cluster.DataDir, "/flag"},
		{"join: flag over file", cfg.Cluster.Join, []string{"10.0.0.2:2379", "10.0.0.3:2379"}},
		{"member_name: env over file", cfg.Cluster.MemberName, "env"},
		{"log.format: env over default", cfg.Log.Format, "json"},
		{"listen_client: file over default, flag not given", cfg.Cluster.ListenClient, "127.0.0.1:1111"},
		{"strategy: file over default", cfg.Raft.Persistence.Strategy, engine.MemFirst},
		{"log.level: file, flag not given", cfg.Log.Level, "warn"},
		{"listen_peer: default", cfg.Cluster.ListenPeer, def.Cluster.ListenPeer},
		{"cluster.name: default", cfg.Cluster.Name, def.Cluster.Name},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
}

// TestServeBadInput: bad flags, variables and files fail serve before it
// starts anything, with an error naming the flag, variable or file, the key
// and the value.
func TestServeBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[raft]\nelection_tick = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	for _, tc := range []struct {
		args []string
		env  []string
		want []string
	}{
		{args: []string{"--log-level", "verbose"}, want: []string{"--log-level", "log.level", `"verbose"`, `"debug", "info", "warn" or "error"`}},
		{args: []string{"--log-format", "xml"}, want: []string{"--log-format", `"xml"`, `"text" or "json"`}},
		{args: []string{"--initial-cluster", "default=127.0.0.1:2380,n2"}, want: []string{"--initial-cluster", `element "n2"`, "NAME=HOST:PORT"}},
		{args: []string{"--listen-client", "localhost"}, want: []string{"--listen-client", `"localhost"`, "HOST:PORT"}},
		{args: []string{"--join", "10.0.0.1"}, want: []string{"--join", `element "10.0.0.1"`}},
		{args: []string{"--name", ""}, want: []string{"--name", "cluster.member_name", "must not be empty"}},
		{args: []string{"--config", filepath.Join(dir, "missing.toml")}, want: []string{"missing.toml"}},
		{args: []string{"--config", bad}, want: []string{"bad.toml", "raft.election_tick = 1", "greater than raft.heartbeat_tick"}},
		{env: []string{"CAIRN_LOG_LEVEL=loud"}, want: []string{"CAIRN_LOG_LEVEL", `"loud"`}},
		{env: []string{"CAIRN_RAFT_TICK_MS=fast"}, want: []string{"CAIRN_RAFT_TICK_MS", `"fast"`, "must be an integer"}},
		{env: []string{"CAIRN_DATA_DIR=/x"}, want: []string{"CAIRN_DATA_DIR", "unknown variable"}},
		{args: []string{"--no-such-flag"}, want: []string{"--no-such-flag"}},
		{args: []string{"extra"}, want: []string{"extra"}},
	} {
		root := newRootCmdEnv(tc.env)
		root.SetArgs(append([]string{"serve", "--data-dir", data}, tc.args...))
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		err := root.Execute()
		if err == nil {
			t.Errorf("serve %v (env %v): no error", tc.args, tc.env)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("serve %v (env %v): error %q does not contain %q", tc.args, tc.env, err, w)
			}
		}
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bad input created the data dir (%v)", err)
	}
}
