package benchmarks

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/internal/servercluster"
)

// The real etcd that BenchmarkServer compares cairn's server with: the etcd
// binary on PATH (Debian's etcd-server package installs etcd 3.4 at
// /usr/bin/etcd), run as separate processes on free loopback ports, each
// with its data in the benchmark's temp dir.

// etcdInstallHint says how to get the etcd binary.
const etcdInstallHint = "install etcd 3.4 or later (Debian/Ubuntu: apt-get install -y etcd-server), or run only the impl=cairn cases (-bench 'BenchmarkServer/impl=cairn', which matches impl=cairn-proc too)"

// etcd's raft timing, its defaults, passed explicitly: a 100 ms heartbeat
// and a 1,000 ms election timeout, the same as cairn's defaults (a 100 ms
// tick, a heartbeat every tick, an election timeout of 10 ticks).
const (
	etcdHeartbeatMs = 100
	etcdElectionMs  = 1000
)

// lookEtcd returns the path of the etcd binary, or skips b (the impl=etcd
// cases are opt-in: they need a binary this module does not build).
func lookEtcd(b *testing.B) string {
	b.Helper()
	p, err := exec.LookPath("etcd")
	if err != nil {
		b.Skipf("etcd is not on PATH (%v): %s", err, etcdInstallHint)
	}
	return p
}

// startEtcd starts an etcd cluster of n members (etcd processes), and
// returns their client endpoints (host:port) in member order. It does not
// wait for a leader (see waitServerLeader). The processes are killed at b's
// cleanup (startProcess).
func startEtcd(b *testing.B, n int) []string {
	b.Helper()
	bin := lookEtcd(b)
	root := b.TempDir()
	names := make([]string, n)
	clients := make([]string, n)
	peers := make([]string, n)
	initial := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("e%d", i+1)
		clients[i] = servercluster.FreeAddr(b)
		peers[i] = "http://" + servercluster.FreeAddr(b)
		initial[i] = names[i] + "=" + peers[i]
	}
	for i := range n {
		client := "http://" + clients[i]
		startProcess(b, "etcd "+names[i], filepath.Join(root, names[i]+".log"), nil, bin,
			"--name", names[i],
			"--data-dir", filepath.Join(root, names[i]),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", "cairn-bench",
			"--heartbeat-interval", fmt.Sprint(etcdHeartbeatMs),
			"--election-timeout", fmt.Sprint(etcdElectionMs),
			"--logger", "zap", "--log-level", "warn",
		)
	}
	return clients
}

// startProcess starts bin with args and env (added to this process's
// environment), its output in the file at logPath. The process is killed,
// and waited for, at b's cleanup; if it exited before, or if b failed, the
// tail of its log is logged then. (A benchmark binary killed by its
// -timeout leaves it running.)
func startProcess(b *testing.B, what, logPath string, env []string, bin string, args ...string) {
	b.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		b.Fatalf("start %s: %v", what, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	b.Cleanup(func() {
		defer logf.Close()
		select {
		case <-done:
			b.Errorf("%s exited before the end of the benchmark (%v); log:\n%s", what, cmd.ProcessState, tail(logPath))
			return
		default:
		}
		cmd.Process.Kill()
		<-done
		if b.Failed() {
			b.Logf("%s log:\n%s", what, tail(logPath))
		}
	})
}

// tail returns the last 4 KiB of the file at path.
func tail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(data) > 4096 {
		data = data[len(data)-4096:]
	}
	return string(data)
}
