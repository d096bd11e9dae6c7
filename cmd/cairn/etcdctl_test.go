package main

// These tests are the proof that cairn speaks etcd's API: they drive the
// real etcdctl (Debian's etcd-client, v3.4) against cairn, and compare its
// output against a real etcd (Debian's etcd-server) running the same script.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/internal/servercluster"
)

// noEtcdctlEnv, set to 1, skips the tests that need etcdctl and etcd.
const noEtcdctlEnv = "CAIRN_NO_ETCDCTL"

// lookBinary finds an etcd binary. A missing one fails the test (a skip
// would hide a check that did not run) unless CAIRN_NO_ETCDCTL=1.
func lookBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	if os.Getenv(noEtcdctlEnv) == "1" {
		t.Skipf("%s=1: not running the %s tests", noEtcdctlEnv, name)
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not on PATH: install it (Debian: apt-get install -y %s), or set %s=1 to skip these tests", name, pkg, noEtcdctlEnv)
	}
	return p
}

// ctlResult is what one etcdctl run printed and how it exited.
type ctlResult struct {
	out, err string
	code     int
}

func (r ctlResult) String() string {
	return fmt.Sprintf("%s--- stderr\n%s--- exit %d\n", r.out, r.err, r.code)
}

// etcdctl runs etcdctl (API v3) against eps.
func etcdctl(t *testing.T, bin string, eps []string, stdin string, args ...string) ctlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--endpoints=" + strings.Join(eps, ","), "--command-timeout=20s"}, args...)...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := ctlResult{out: out.String(), err: errb.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("etcdctl %v did not finish in %v: %s", args, waitTimeout, r)
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("etcdctl %v: %v", args, err)
	}
	return r
}

// ctlOK runs etcdctl and fails the test unless it exits 0.
func ctlOK(t *testing.T, bin string, eps []string, stdin string, args ...string) string {
	t.Helper()
	r := etcdctl(t, bin, eps, stdin, args...)
	if r.code != 0 {
		t.Fatalf("etcdctl %v: %s", args, r)
	}
	return r.out
}

// ctlBackground starts a long-running etcdctl command (watch, keep-alive);
// waitFor reads its output, and stop ends it.
type ctlBackground struct {
	cmd  *exec.Cmd
	out  syncBuffer
	errb syncBuffer
	done chan struct{}
}

func startEtcdctl(t *testing.T, bin string, eps []string, args ...string) *ctlBackground {
	t.Helper()
	b := &ctlBackground{done: make(chan struct{})}
	b.cmd = exec.Command(bin, append([]string{"--endpoints=" + strings.Join(eps, ",")}, args...)...)
	b.cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.errb
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(b.stop)
	return b
}

// waitFor waits until the output contains want.
func (b *ctlBackground) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(b.out.String(), want) {
		select {
		case <-b.done:
			if strings.Contains(b.out.String(), want) {
				return
			}
			t.Fatalf("etcdctl %v exited before printing %q: stdout %q, stderr %q", b.cmd.Args[1:], want, b.out.String(), b.errb.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcdctl %v did not print %q in %v: stdout %q, stderr %q", b.cmd.Args[1:], want, waitTimeout, b.out.String(), b.errb.String())
		}
	}
}

func (b *ctlBackground) stop() {
	b.cmd.Process.Kill()
	<-b.done
}

// TestEtcdctl drives a three-member cairn cluster with the real etcdctl.
func TestEtcdctl(t *testing.T) {
	bin := lookBinary(t, "etcdctl", "etcd-client")
	c := servercluster.New(t, servercluster.Options{})
	eps := c.Endpoints()
	ok := func(stdin string, args ...string) string {
		t.Helper()
		return ctlOK(t, bin, eps, stdin, args...)
	}

	wantOutput(t, "put", ok("", "put", "foo", "bar"), "OK\n")
	wantOutput(t, "get", ok("", "get", "foo"), "foo\nbar\n")
	for _, ep := range eps { // every member answers, linearizable and serializable
		wantOutput(t, "get from "+ep, ctlOK(t, bin, []string{ep}, "", "get", "foo"), "foo\nbar\n")
		wantOutput(t, "serializable get from "+ep, ctlOK(t, bin, []string{ep}, "", "get", "foo", "--consistency=s"), "foo\nbar\n")
	}
	ok("", "put", "foo/a", "1")
	ok("", "put", "foo/b", "2")
	wantOutput(t, "get --prefix", ok("", "get", "foo/", "--prefix"), "foo/a\n1\nfoo/b\n2\n")
	wantOutput(t, "del", ok("", "del", "foo/a"), "1\n")
	wantOutput(t, "del --prefix", ok("", "del", "foo/", "--prefix"), "1\n")
	wantOutput(t, "get after del", ok("", "get", "foo/", "--prefix"), "")

	// watch: etcdctl in the background sees puts made after it started.
	w := startEtcdctl(t, bin, eps, "watch", "w/", "--prefix")
	time.Sleep(300 * time.Millisecond) // let the watch be created; the loop below tolerates a late one
	deadline := time.Now().Add(waitTimeout)
	for i := 0; !strings.Contains(w.out.String(), "PUT\nw/k\n"); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("etcdctl watch printed %q", w.out.String())
		}
		ok("", "put", "w/k", strconv.Itoa(i))
		time.Sleep(100 * time.Millisecond)
	}
	ok("", "del", "w/k")
	w.waitFor(t, "DELETE\nw/k\n\n")
	w.stop()

	// txn from stdin
	ok("", "put", "t", "1")
	txn := "value(\"t\") = \"1\"\n\nput t 2\nget t\n\nput t failed\n\n" // etcdctl 3.4 wants the last blank line
	wantOutput(t, "txn", ok(txn, "txn"), "SUCCESS\n\nOK\n\nt\n2\n")
	wantOutput(t, "txn again", ok(txn, "txn"), "FAILURE\n\nOK\n")
	wantOutput(t, "get after txn", ok("", "get", "t"), "t\nfailed\n")

	// leases
	m := regexp.MustCompile(`^lease ([0-9a-f]{16}) granted with TTL\(60s\)\n$`).FindStringSubmatch(ok("", "lease", "grant", "60"))
	if m == nil {
		t.Fatal("lease grant printed no lease")
	}
	id := m[1]
	ok("", "put", "l", "x", "--lease="+id)
	wantOutput(t, "keep-alive --once", ok("", "lease", "keep-alive", "--once", id), "lease "+id+" keepalived with TTL(60)\n")
	ka := startEtcdctl(t, bin, eps, "lease", "keep-alive", id)
	ka.waitFor(t, "lease "+id+" keepalived with TTL(60)\n")
	ka.stop()
	if out := ok("", "lease", "timetolive", id, "--keys"); !regexp.MustCompile(`^lease ` + id + ` granted with TTL\(60s\), remaining\(\d+s\), attached keys\(\[l\]\)\n$`).MatchString(out) {
		t.Errorf("lease timetolive: %q", out)
	}
	if out := ok("", "lease", "list"); !strings.Contains(out, id) {
		t.Errorf("lease list: %q", out)
	}
	wantOutput(t, "lease revoke", ok("", "lease", "revoke", id), "lease "+id+" revoked\n")
	wantOutput(t, "get after revoke", ok("", "get", "l"), "")

	// cluster
	members := ok("", "member", "list")
	for _, name := range c.Names() {
		if !regexp.MustCompile(`(?m)^[0-9a-f]+, started, ` + name + `, http://127\.0\.0\.1:\d+, http://127\.0\.0\.1:\d+, false$`).MatchString(members) {
			t.Errorf("member list does not show %s:\n%s", name, members)
		}
	}
	status := ok("", "endpoint", "status")
	if n := len(regexp.MustCompile(`(?m)^127\.0\.0\.1:\d+, [0-9a-f]+, 3\.\d+\.\d+, [\d.]+ [kMG]?B, (true|false), false, \d+, \d+, \d+, $`).FindAllString(status, -1)); n != 3 || strings.Count(status, ", true, false,") != 1 {
		t.Errorf("endpoint status:\n%s", status)
	}
	h := etcdctl(t, bin, eps, "", "endpoint", "health") // etcdctl 3.4 prints it on stderr
	health := h.out + h.err
	if h.code != 0 {
		t.Errorf("endpoint health: %s", h)
	}
	if n := strings.Count(health, "is healthy: successfully committed proposal"); n != 3 {
		t.Errorf("endpoint health:\n%s", health)
	}
	if table := ok("", "member", "list", "-w", "table"); strings.Count(table, "| started |") != 3 {
		t.Errorf("member list -w table:\n%s", table)
	}

	// snapshot save talks to one member
	file := filepath.Join(t.TempDir(), "snap.db")
	if out := ctlOK(t, bin, eps[:1], "", "snapshot", "save", file); !strings.Contains(out, "Snapshot saved at "+file) {
		t.Errorf("snapshot save: %q", out)
	}
	if st, err := os.Stat(file); err != nil || st.Size() == 0 {
		t.Errorf("snapshot file: %v %v", st, err)
	}
}

// startEtcd runs a single-node etcd on free loopback ports with its data in
// a temporary directory, until the test ends, and returns its client
// endpoint.
func startEtcd(t *testing.T, ctl string) string {
	t.Helper()
	bin := lookBinary(t, "etcd", "etcd-server")
	client, peer := "http://"+servercluster.FreeAddr(t), "http://"+servercluster.FreeAddr(t)
	cmd := exec.Command(bin, "--data-dir", filepath.Join(t.TempDir(), "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "default="+peer, "--log-level", "warn")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("etcd's logs:\n%s", logs.String())
		}
	})
	ep := strings.TrimPrefix(client, "http://")
	deadline := time.Now().Add(waitTimeout)
	for {
		select {
		case <-done:
			t.Fatalf("etcd exited: %s", logs.String())
		default:
		}
		if r := etcdctl(t, ctl, []string{ep}, "", "--dial-timeout=1s", "endpoint", "health"); r.code == 0 {
			return ep
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not healthy after %v: %s", waitTimeout, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ctlStep is one etcdctl command of the comparison script.
type ctlStep struct {
	args  []string
	stdin string
	// watchUntil, if set, runs the command in the background until it prints
	// this (watch does not exit by itself).
	watchUntil string
}

// compareScript runs against a fresh cairn and a fresh etcd; revisions
// match because both start empty at revision 1.
var compareScript = []ctlStep{
	{args: []string{"put", "foo", "bar"}},
	{args: []string{"put", "foo", "bar2", "--prev-kv"}},
	{args: []string{"put", "foo/a", "1"}},
	{args: []string{"put", "foo/b", "2"}},
	{args: []string{"put", "zoo", "z"}},
	{args: []string{"get", "foo"}},
	{args: []string{"get", "missing"}},
	{args: []string{"get", "foo", "--prefix"}},
	{args: []string{"get", "foo/", "--prefix", "--keys-only"}},
	{args: []string{"get", "foo", "--prefix", "--limit=2"}},
	{args: []string{"get", "foo", "--from-key"}},
	{args: []string{"get", "foo", "zoo"}},
	{args: []string{"get", "", "--prefix", "--print-value-only"}},
	{args: []string{"get", "foo", "--prefix", "--order=DESCEND", "--sort-by=MODIFY"}},
	{args: []string{"get", "foo", "--rev=2"}},
	{args: []string{"get", "foo", "--consistency=s"}},
	{args: []string{"get", "foo", "-w", "json"}},
	{args: []string{"get", "foo/", "--prefix", "--count-only", "-w", "fields"}},
	{args: []string{"get", "foo", "--rev=1000"}},
	{args: []string{"get", ""}},
	{args: []string{"put", "", "x"}},
	{args: []string{"del", "foo/a", "--prev-kv"}},
	{args: []string{"del", "nothing"}},
	{args: []string{"del", "foo", "--prefix"}},
	{args: []string{"put", "t", "1"}},
	{args: []string{"txn"}, stdin: "value(\"t\") = \"1\"\nmod(\"t\") > \"0\"\nver(\"t\") = \"1\"\n\nput t 2\nget t\ndel zoo\n\nput t failed\n\n"},
	{args: []string{"txn"}, stdin: "value(\"t\") = \"1\"\n\nput t 3\n\nget t\nput t 4 --prev-kv\n\n"},
	{args: []string{"txn"}, stdin: "create(\"nope\") = \"0\"\n\nget nope\n\n\n"},
	{args: []string{"txn", "-w", "json"}, stdin: "ver(\"t\") > \"1\"\n\nget t\n\n\n"},
	{args: []string{"watch", "--rev=2", "foo", "--prefix", "--prev-kv"}, watchUntil: "DELETE\nfoo/b\n"},
	{args: []string{"watch", "--rev=1", "t"}, watchUntil: "PUT\nt\n4\n"},
	{args: []string{"compaction", "5"}},
	{args: []string{"compaction", "5"}},
	{args: []string{"compaction", "1000"}},
	{args: []string{"get", "foo", "--rev=2"}},
	{args: []string{"get", "t", "--rev=5"}},
	{args: []string{"watch", "--rev=2", "foo"}},
	{args: []string{"put", "missing", "--ignore-value"}},
	{args: []string{"put", "foo/c", "3"}},
	{args: []string{"put", "foo/c", "--ignore-value", "--prev-kv"}},
	{args: []string{"get", "foo", "--prefix", "--min-mod-revision=14"}},
	{args: []string{"compaction", "6", "--physical"}},
	{args: []string{"lease", "grant", "100"}},
	{args: []string{"put", "k", "v", "--lease=$LEASE"}},
	{args: []string{"put", "k", "v2", "--ignore-lease"}},
	{args: []string{"get", "k", "-w", "json"}},
	{args: []string{"lease", "timetolive", "$LEASE", "--keys"}},
	{args: []string{"lease", "keep-alive", "--once", "$LEASE"}},
	{args: []string{"lease", "list"}},
	{args: []string{"txn"}, stdin: "value(\"k\") = \"v2\"\n\nput k v3 --lease=$LEASE\nget k\n\n\n"},
	{args: []string{"lease", "revoke", "$LEASE"}},
	{args: []string{"get", "k"}},
	{args: []string{"lease", "timetolive", "$LEASE"}},
	{args: []string{"lease", "grant", "100000000000"}},
	{args: []string{"alarm", "list"}},
	{args: []string{"defrag"}},
	{args: []string{"lease", "timetolive", "1234abcd"}},
	{args: []string{"lease", "revoke", "1234abcd"}},
	{args: []string{"lease", "keep-alive", "--once", "1234abcd"}},
	{args: []string{"put", "k", "v", "--lease=1234abcd"}},
	{args: []string{"member", "list"}},
	{args: []string{"endpoint", "status"}},
	{args: []string{"endpoint", "health"}},
	{args: []string{"member", "add", "learner", "--peer-urls=http://127.0.0.1:1", "--learner"}},
	{args: []string{"member", "list"}},
	{args: []string{"member", "update", "$MEMBER", "--peer-urls=http://127.0.0.1:2"}},
	{args: []string{"member", "remove", "$MEMBER"}},
	{args: []string{"member", "remove", "$MEMBER"}},
	{args: []string{"member", "list"}},
	// Last: promoting a learner that never started must be refused (it
	// would cost the quorum).
	{args: []string{"member", "add", "learner2", "--peer-urls=http://127.0.0.1:3", "--learner"}},
	{args: []string{"member", "promote", "$MEMBER"}},
}

// scriptVars are values a step's output defines for later steps ($NAME in
// their arguments and input).
var scriptVars = map[string]*regexp.Regexp{
	"$LEASE":  regexp.MustCompile(`lease ([0-9a-f]{16}) granted`),
	"$MEMBER": regexp.MustCompile(`Member +([0-9a-f]+) added`),
}

// TestEtcdctlMatchesEtcd runs compareScript with etcdctl against cairn and
// against etcd and compares the outputs, normalised for what legitimately
// differs (ids, addresses, names, sizes, versions, timings).
func TestEtcdctlMatchesEtcd(t *testing.T) {
	ctl := lookBinary(t, "etcdctl", "etcd-client")
	etcdEP := startEtcd(t, ctl)
	c := servercluster.New(t, servercluster.Options{Nodes: 1})
	cairnEP := c.Endpoints()[0]

	vars := map[string]map[string]string{etcdEP: {}, cairnEP: {}}
	run := func(ep string, s ctlStep) string {
		args := slices.Clone(s.args)
		for name, v := range vars[ep] {
			for i := range args {
				args[i] = strings.ReplaceAll(args[i], name, v)
			}
			s.stdin = strings.ReplaceAll(s.stdin, name, v)
		}
		var out string
		if s.watchUntil == "" {
			out = etcdctl(t, ctl, []string{ep}, s.stdin, args...).String()
		} else {
			b := startEtcdctl(t, ctl, []string{ep}, args...)
			b.waitFor(t, s.watchUntil)
			time.Sleep(200 * time.Millisecond) // anything printed after it would be a difference too
			b.stop()
			out = b.out.String()
		}
		for name, re := range scriptVars {
			if m := re.FindStringSubmatch(out); m != nil {
				vars[ep][name] = m[1]
			}
		}
		return out
	}
	for _, s := range compareScript {
		want := normalise(run(etcdEP, s), etcdEP, "default")
		got := normalise(run(cairnEP, s), cairnEP, "n1")
		if got != want {
			t.Errorf("etcdctl %s\n--- cairn:\n%s--- etcd:\n%s", strings.Join(s.args, " "), got, want)
		}
	}
}

var (
	reHexID       = regexp.MustCompile(`\b[0-9a-f]{12,16}\b`)
	reVersion     = regexp.MustCompile(`\b3\.\d+\.\d+\b`)
	reSize        = regexp.MustCompile(`\b[\d.]+ [kMG]?B\b`)
	reTook        = regexp.MustCompile(`took = [\d.]+[µnm]?s`)
	reRemain      = regexp.MustCompile(`remaining\(\d+s\)`)
	reJSONHdr     = regexp.MustCompile(`"(cluster_id|member_id|raft_term|lease|ID)":\d+`)
	reStatus      = regexp.MustCompile(`(?m)^(EP, ID\d+, VERSION, SIZE, (?:true|false), (?:true|false)), \d+, \d+, \d+, `)
	reMember      = regexp.MustCompile(`Member +`)
	reCluster     = regexp.MustCompile(`cluster +`) // %16x pads shorter ids with spaces
	reInitial     = regexp.MustCompile(`ETCD_INITIAL_CLUSTER="([^"]*)"`)
	reMemberLines = regexp.MustCompile(`(?m)(^[0-9a-f]+, (?:un)?started, .*\n)+`)
	reClientLog   = regexp.MustCompile(`(?m)^\{"level":.*\}\n`) // clientv3's own logs, with timestamps
	reFieldHdr    = regexp.MustCompile(`(?m)^"(ClusterID|MemberID|RaftTerm)" : \d+$`)
)

// normalise replaces what differs between two servers answering the same
// requests: endpoints, member and lease ids (numbered in order of
// appearance), member names, versions, sizes, timings, raft terms and
// indexes.
func normalise(s, ep, name string) string {
	s = reClientLog.ReplaceAllString(s, "")
	s = strings.ReplaceAll(s, "http://"+ep, "EP")
	s = strings.ReplaceAll(s, ep, "EP")
	s = regexp.MustCompile(`http://127\.0\.0\.1:\d+`).ReplaceAllString(s, "PEER")
	s = strings.ReplaceAll(s, ", "+name+", ", ", NAME, ")
	s = strings.ReplaceAll(s, ","+name+"=", ",NAME=")
	s = strings.ReplaceAll(s, `"`+name+"=", `"NAME=`)
	s = reMember.ReplaceAllString(s, "Member ")
	s = reCluster.ReplaceAllString(s, "cluster ")
	// Members are listed in an order of their random ids.
	s = reInitial.ReplaceAllStringFunc(s, func(l string) string {
		m := reInitial.FindStringSubmatch(l)
		els := strings.Split(m[1], ",")
		slices.Sort(els)
		return `ETCD_INITIAL_CLUSTER="` + strings.Join(els, ",") + `"`
	})
	// Member lines: their ids are random, and so is their order.
	s = reMemberLines.ReplaceAllStringFunc(s, func(block string) string {
		lines := strings.Split(strings.TrimSuffix(block, "\n"), "\n")
		for i, l := range lines {
			_, rest, _ := strings.Cut(l, ", ")
			lines[i] = "ID, " + rest
		}
		slices.Sort(lines)
		return strings.Join(lines, "\n") + "\n"
	})
	ids := map[string]string{}
	s = reHexID.ReplaceAllStringFunc(s, func(id string) string {
		if _, ok := ids[id]; !ok {
			ids[id] = fmt.Sprintf("ID%d", len(ids)+1)
		}
		return ids[id]
	})
	s = reVersion.ReplaceAllString(s, "VERSION")
	s = reSize.ReplaceAllString(s, "SIZE")
	s = reTook.ReplaceAllString(s, "took = T")
	s = reRemain.ReplaceAllString(s, "remaining(R)")
	s = reJSONHdr.ReplaceAllString(s, `"$1":N`)
	s = reFieldHdr.ReplaceAllString(s, `"$1" : N`)
	s = reStatus.ReplaceAllString(s, "$1, TERM, INDEX, APPLIED, ")
	return s
}
