package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// member is one `cairn serve` process.
type member struct {
	name, client string
	args         []string
	cmd          *exec.Cmd
	log          *os.File
}

func (m *member) start(t *testing.T) {
	t.Helper()
	m.cmd = exec.Command(os.Args[0])
	m.cmd.Env = []string{runMainEnv + "=" + strings.Join(m.args, "\n")}
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

func (m *member) kill(t *testing.T) {
	t.Helper()
	if err := m.cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown at all
		t.Fatal(err)
	}
	m.cmd.Wait()
}

// startProcesses starts a cluster of n `cairn serve` processes on free
// loopback ports, each logging to a file in a temporary directory. At the
// end of the test they are resumed (if stopped), killed, and their logs
// printed if it failed.
func startProcesses(t *testing.T, n int) []*member {
	t.Helper()
	dir := t.TempDir()
	var members []*member
	var initial []string
	for i := 1; i <= n; i++ {
		m := &member{name: fmt.Sprintf("n%d", i), client: mustFreePort(t)}
		peer := mustFreePort(t)
		initial = append(initial, m.name+"="+peer)
		m.args = []string{"serve", "--name", m.name, "--data-dir", filepath.Join(dir, m.name),
			"--listen-client", m.client, "--listen-peer", peer, "--log-level", "warn"}
		f, err := os.Create(filepath.Join(dir, m.name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		m.log = f
		members = append(members, m)
	}
	for _, m := range members {
		m.args = append(m.args, "--initial-cluster", strings.Join(initial, ","))
		m.start(t)
	}
	t.Cleanup(func() {
		for _, m := range members {
			m.cmd.Process.Signal(syscall.SIGCONT)
			m.cmd.Process.Kill()
			m.cmd.Wait()
			m.log.Close()
			if t.Failed() {
				b, _ := os.ReadFile(m.log.Name())
				t.Logf("%s log:\n%s", m.name, b)
			}
		}
	})
	return members
}

func endpointsOf(members []*member) []string {
	var eps []string
	for _, m := range members {
		eps = append(eps, m.client)
	}
	return eps
}

// TestKilledMemberRejoinsWithItsData runs a 3-member cluster of real
// `cairn serve` processes, SIGKILLs members (a follower, then the leader)
// under a stream of writes and starts each again with the same command
// line: it rejoins with its data, and no acknowledged write is lost.
func TestKilledMemberRejoinsWithItsData(t *testing.T) {
	members := startProcesses(t, 3)
	endpoints := endpointsOf(members)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	cl, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	acked := 0
	put := func() {
		for {
			_, err := cl.Put(ctx, fmt.Sprintf("k%04d", acked), "v")
			if err == nil {
				acked++
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("put %d: %v", acked, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	leaderOf := func() *member {
		for {
			st, err := cl.Status(ctx, endpoints[0])
			if err == nil && st.Leader != 0 {
				for _, m := range members {
					if s, err := cl.Status(ctx, m.client); err == nil && s.Header.MemberId == st.Leader {
						return m
					}
				}
			}
			if ctx.Err() != nil {
				t.Fatal("no leader")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for range 50 {
		put()
	}
	leader := leaderOf()
	var follower *member
	for _, m := range members {
		if m != leader {
			follower = m
		}
	}
	for _, victim := range []*member{follower, leader} {
		victim.kill(t)
		for range 50 {
			put()
		}
		victim.start(t)
		for range 50 {
			put()
		}
		// The restarted member serves every acknowledged write from its
		// own state once it caught up.
		one, err := clientv3.New(clientv3.Config{Endpoints: []string{victim.client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		for {
			got, err := one.Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable())
			if err == nil && got.Count == int64(acked) {
				break
			}
			if ctx.Err() != nil {
				one.Close()
				t.Fatalf("%s after restart: %v %v, want %d keys", victim.name, got, err, acked)
			}
			time.Sleep(50 * time.Millisecond)
		}
		one.Close()
	}
	list, err := cl.MemberList(ctx)
	if err != nil || len(list.Members) != 3 {
		t.Fatalf("members after the restarts: %v %v", list, err)
	}
}

func mustFreePort(t *testing.T) string {
	t.Helper()
	addr, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
