package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/internal/servercluster"
)

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// cairnCmd runs the cairn command line in-process with stdin and returns
// its output and exit code. ctx bounds it (and stands for Ctrl-C).
func cairnCmd(ctx context.Context, stdin string, args ...string) (stdout, stderr string, code int) {
	var out, errb syncBuffer
	code = cliMain(ctx, args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// cairnOK runs the command line against eps and fails the test unless it
// exits 0.
func cairnOK(t *testing.T, eps []string, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	out, errOut, code := cairnCmd(ctx, stdin, append([]string{"--endpoints", strings.Join(eps, ",")}, args...)...)
	if code != 0 {
		t.Fatalf("cairn %v: exit code %d, stderr:\n%s", args, code, errOut)
	}
	return out
}

// cairnFails runs the command line against eps and checks its exit code and
// that stderr contains every want.
func cairnFails(t *testing.T, eps []string, stdin string, code int, want []string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if eps != nil {
		args = append([]string{"--endpoints", strings.Join(eps, ",")}, args...)
	}
	out, errOut, got := cairnCmd(ctx, stdin, args...)
	if got != code {
		t.Errorf("cairn %v: exit code %d, want %d; stdout %q stderr %q", args, got, code, out, errOut)
	}
	if !strings.HasPrefix(errOut, "Error: ") {
		t.Errorf("cairn %v: stderr %q does not start with \"Error: \"", args, errOut)
	}
	for _, w := range want {
		if !strings.Contains(errOut, w) {
			t.Errorf("cairn %v: stderr %q does not contain %q", args, errOut, w)
		}
	}
}

func wantOutput(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got\n%s\nwant\n%s", what, got, want)
	}
}

// TestClientCommands drives every client command against a three-member
// cluster, in each output format where it matters.
func TestClientCommands(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{})
	eps := c.Endpoints()

	t.Run("put/get", func(t *testing.T) {
		wantOutput(t, "put", cairnOK(t, eps, "", "put", "foo", "bar"), "OK\n")
		wantOutput(t, "get", cairnOK(t, eps, "", "get", "foo"), "foo\nbar\n")
		wantOutput(t, "get a missing key", cairnOK(t, eps, "", "get", "missing"), "")
		wantOutput(t, "put --prev-kv", cairnOK(t, eps, "", "put", "foo", "baz", "--prev-kv"), "OK\nfoo\nbar\n")
		wantOutput(t, "get --print-value-only", cairnOK(t, eps, "", "get", "foo", "--print-value-only"), "baz\n")
		wantOutput(t, "get --consistency eventual", cairnOK(t, eps, "", "get", "foo", "--consistency", "eventual"), "foo\nbaz\n")
		// lease and linearizable are sent in the metadata: the members count
		// the reads by the policy they served.
		before := readStats(c)
		wantOutput(t, "get --consistency lease", cairnOK(t, eps, "", "get", "foo", "--consistency", "lease"), "foo\nbaz\n")
		wantOutput(t, "get --consistency l", cairnOK(t, eps, "", "get", "foo", "--consistency", "l"), "foo\nbaz\n")
		if after := readStats(c); after.Lease != before.Lease+1 || after.Linearizable < before.Linearizable+1 {
			t.Errorf("reads served: lease %d -> %d (want +1), linearizable %d -> %d (want at least +1)",
				before.Lease, after.Lease, before.Linearizable, after.Linearizable)
		}
		wantOutput(t, "put from stdin", cairnOK(t, eps, "from\nstdin", "put", "in"), "OK\n")
		wantOutput(t, "get stdin value", cairnOK(t, eps, "", "get", "in", "--print-value-only"), "from\nstdin\n")
		// Global flags may come before the command, as cairn local prints.
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		out, errOut, code := cairnCmd(ctx, "", "--endpoints", strings.Join(eps, ","), "-w", "simple", "get", "foo")
		if code != 0 || out != "foo\nbaz\n" {
			t.Errorf("flags before the command: code %d, %q %q", code, out, errOut)
		}

		var resp struct {
			Header struct{ Revision string }
			Kvs    []struct {
				Key, Value     []byte
				ModRevision    string `json:"mod_revision"`
				CreateRevision string `json:"create_revision"`
				Version        string
			}
			Count string
		}
		if err := json.Unmarshal([]byte(cairnOK(t, eps, "", "get", "foo", "-w", "json")), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Count != "1" || len(resp.Kvs) != 1 || string(resp.Kvs[0].Key) != "foo" || string(resp.Kvs[0].Value) != "baz" ||
			resp.Kvs[0].Version != "2" || resp.Header.Revision == "" {
			t.Errorf("get -w json: %+v", resp)
		}
		var put struct{ Header struct{ Revision string } }
		if err := json.Unmarshal([]byte(cairnOK(t, eps, "", "put", "foo", "qux", "-w", "json")), &put); err != nil || put.Header.Revision == "" {
			t.Errorf("put -w json: %+v %v", put, err)
		}
		table := cairnOK(t, eps, "", "get", "foo", "-w", "table")
		if !regexp.MustCompile(`(?m)^\| KEY +\| VALUE +\|`).MatchString(table) || !regexp.MustCompile(`(?m)^\| foo +\| qux +\|`).MatchString(table) {
			t.Errorf("get -w table:\n%s", table)
		}
	})

	t.Run("prefix/del", func(t *testing.T) {
		for _, kv := range [][2]string{{"p/1", "one"}, {"p/2", "two"}, {"p/3", "three"}, {"q", "x"}} {
			cairnOK(t, eps, "", "put", kv[0], kv[1])
		}
		wantOutput(t, "get --prefix", cairnOK(t, eps, "", "get", "p/", "--prefix"), "p/1\none\np/2\ntwo\np/3\nthree\n")
		wantOutput(t, "get range", cairnOK(t, eps, "", "get", "p/1", "p/3"), "p/1\none\np/2\ntwo\n")
		wantOutput(t, "get --keys-only", cairnOK(t, eps, "", "get", "p/", "--prefix", "--keys-only"), "p/1\n\np/2\n\np/3\n\n")
		wantOutput(t, "get --count-only", cairnOK(t, eps, "", "get", "p/", "--prefix", "--count-only"), "3\n")
		wantOutput(t, "get --limit", cairnOK(t, eps, "", "get", "p/", "--prefix", "--limit", "1"), "p/1\none\n")
		wantOutput(t, "get --order", cairnOK(t, eps, "", "get", "p/", "--prefix", "--order", "DESCEND", "--keys-only"), "p/3\n\np/2\n\np/1\n\n")
		wantOutput(t, "get --from-key", cairnOK(t, eps, "", "get", "p/3", "--from-key", "--keys-only"), "p/3\n\nq\n\n")
		wantOutput(t, "del", cairnOK(t, eps, "", "del", "p/1"), "1\n")
		wantOutput(t, "del missing", cairnOK(t, eps, "", "del", "p/1"), "0\n")
		wantOutput(t, "del --prefix --prev-kv", cairnOK(t, eps, "", "del", "p/", "--prefix", "--prev-kv"), "2\np/2\ntwo\np/3\nthree\n")
		wantOutput(t, "get after del", cairnOK(t, eps, "", "get", "p/", "--prefix"), "")
	})

	t.Run("txn", func(t *testing.T) {
		cairnOK(t, eps, "", "put", "t/a", "1")
		in := `value("t/a") = "1"
mod("t/a") > "0"

put t/a 2
put "t/b" "two words"
get t/ --prefix

put t/a failed
`
		wantOutput(t, "txn success", cairnOK(t, eps, in, "txn"), "SUCCESS\n\nOK\n\nOK\n\nt/a\n2\nt/b\ntwo words\n")
		in = "value(\"t/a\") = \"1\"\n\nput t/a 3\n\ndel t/b\nget t/a\n"
		wantOutput(t, "txn failure", cairnOK(t, eps, in, "txn"), "FAILURE\n\n1\n\nt/a\n2\n")
		wantOutput(t, "txn without compares", cairnOK(t, eps, "\nget t/a\n", "txn"), "SUCCESS\n\nt/a\n2\n")
		wantOutput(t, "txn --interactive", cairnOK(t, eps, "\n\n\n", "txn", "-i"),
			"compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n")
		var resp struct{ Succeeded bool }
		if err := json.Unmarshal([]byte(cairnOK(t, eps, "ver(\"t/a\") = \"2\"\n\nget t/a\n", "txn", "-w", "json")), &resp); err != nil || !resp.Succeeded {
			t.Errorf("txn -w json: %+v %v", resp, err)
		}
	})

	t.Run("watch", func(t *testing.T) {
		var put struct{ Header struct{ Revision string } }
		if err := json.Unmarshal([]byte(cairnOK(t, eps, "", "put", "w/start", "0", "-w", "json")), &put); err != nil {
			t.Fatal(err)
		}
		rev, _ := strconv.ParseInt(put.Header.Revision, 10, 64)
		// Live: the watch starts at the next revision, so it sees both puts
		// whenever it is established.
		type result struct {
			out, errOut string
			code        int
		}
		done := make(chan result, 1)
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		go func() {
			out, errOut, code := cairnCmd(ctx, "", "--endpoints", strings.Join(eps, ","), "watch", "w/", "--prefix",
				"--rev", strconv.FormatInt(rev+1, 10), "--max-events", "3", "--prev-kv")
			done <- result{out, errOut, code}
		}()
		cairnOK(t, eps, "", "put", "w/a", "1")
		cairnOK(t, eps, "", "put", "w/a", "2")
		cairnOK(t, eps, "", "del", "w/a")
		cairnOK(t, eps, "", "put", "w/late", "x") // after --max-events
		r := <-done
		if r.code != 0 {
			t.Fatalf("watch: exit code %d: %s", r.code, r.errOut)
		}
		wantOutput(t, "watch", r.out, "PUT\nw/a\n1\nPUT\nw/a\n1\nw/a\n2\nDELETE\nw/a\n2\nw/a\n\n")
		// Replay from history, and the end by Ctrl-C (the context).
		ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel2()
		out, errOut, code := cairnCmd(ctx2, "", "--endpoints", strings.Join(eps, ","), "watch", "w/start", "--rev", strconv.FormatInt(rev, 10))
		if code != 0 || out != "PUT\nw/start\n0\n" {
			t.Errorf("watch until stopped: code %d, stdout %q, stderr %q", code, out, errOut)
		}
	})

	t.Run("lease", func(t *testing.T) {
		out := cairnOK(t, eps, "", "lease", "grant", "60")
		m := regexp.MustCompile(`^lease ([0-9a-f]{16}) granted with TTL\(60s\)\n$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("lease grant: %q", out)
		}
		id := m[1]
		cairnOK(t, eps, "", "put", "l/a", "x", "--lease", id)
		wantOutput(t, "keep-alive --once", cairnOK(t, eps, "", "lease", "keep-alive", id, "--once"), "lease "+id+" keepalived with TTL(60)\n")
		out = cairnOK(t, eps, "", "lease", "timetolive", id, "--keys")
		if !regexp.MustCompile(`^lease ` + id + ` granted with TTL\(60s\), remaining\(\d+s\), attached keys\(\[l/a\]\)\n$`).MatchString(out) {
			t.Errorf("lease timetolive --keys: %q", out)
		}
		if out := cairnOK(t, eps, "", "lease", "list"); !strings.HasPrefix(out, "found ") || !strings.Contains(out, id+"\n") {
			t.Errorf("lease list: %q", out)
		}
		// keep-alive without --once runs until stopped.
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		out, errOut, code := cairnCmd(ctx, "", "--endpoints", strings.Join(eps, ","), "lease", "keep-alive", id)
		if code != 0 || !strings.HasPrefix(out, "lease "+id+" keepalived with TTL(60)\n") {
			t.Errorf("lease keep-alive: code %d, stdout %q, stderr %q", code, out, errOut)
		}
		wantOutput(t, "revoke", cairnOK(t, eps, "", "lease", "revoke", id), "lease "+id+" revoked\n")
		wantOutput(t, "get after revoke", cairnOK(t, eps, "", "get", "l/a"), "")
		// As etcd: a lease that is gone has a TTL of -1, not an error.
		ctx2, cancel2 := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel2()
		out, errOut, code = cairnCmd(ctx2, "", "--endpoints", strings.Join(eps, ","), "lease", "timetolive", id)
		if code != 0 || out != "lease "+id+" already expired\n" {
			t.Errorf("lease timetolive after revoke: code %d, stdout %q, stderr %q; want %q", code, out, errOut, "lease "+id+" already expired\n")
		}
		cairnFails(t, eps, "", 1, []string{"Error: etcdserver: requested lease not found"}, "lease", "keep-alive", id, "--once")
		cairnFails(t, eps, "", 1, []string{"Error: etcdserver: requested lease not found"}, "lease", "revoke", id)
		cairnFails(t, eps, "", 1, []string{"Error: etcdserver: requested lease not found"}, "put", "l/b", "x", "--lease", id)
	})

	t.Run("member", func(t *testing.T) {
		out := cairnOK(t, eps, "", "member", "list")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("member list: %q", out)
		}
		for _, l := range lines {
			f := strings.Split(l, ", ")
			if len(f) != 6 || f[1] != "started" || f[5] != "false" || c.Name(mustHex(t, f[0])) != f[2] {
				t.Errorf("member list line %q", l)
			}
		}
		table := cairnOK(t, eps, "", "member", "list", "-w", "table")
		for _, name := range c.Names() {
			if !regexp.MustCompile(`(?m)^\| [0-9a-f]+ +\| started +\| ` + name + ` +\| http://`).MatchString(table) {
				t.Errorf("member list -w table does not show %s:\n%s", name, table)
			}
		}
		var list struct{ Members []struct{ Name string } }
		if err := json.Unmarshal([]byte(cairnOK(t, eps, "", "member", "list", "-w", "json")), &list); err != nil || len(list.Members) != 3 {
			t.Errorf("member list -w json: %+v %v", list, err)
		}

		// A learner that never starts: added, updated, removed.
		peer := servercluster.FreeAddr(t)
		out = cairnOK(t, eps, "", "member", "add", "n4", "--peer-urls", "http://"+peer, "--learner")
		m := regexp.MustCompile(`^Member +([0-9a-f]+) added as learner to cluster +[0-9a-f]+\n\nCAIRN_CLUSTER_MEMBER_NAME="n4"\nCAIRN_CLUSTER_LISTEN_PEER="` +
			peer + `"\nCAIRN_CLUSTER_JOIN="[0-9.:,]+"\n$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("member add: %q", out)
		}
		id := m[1]
		if out := cairnOK(t, eps, "", "member", "list"); !strings.Contains(out, id+", unstarted, , http://"+peer+", , true") {
			t.Errorf("member list after add: %q", out)
		}
		peer2 := servercluster.FreeAddr(t)
		if out := cairnOK(t, eps, "", "member", "update", id, "--peer-urls", "http://"+peer2); !regexp.MustCompile(`^Member +` + id + ` updated in cluster`).MatchString(out) {
			t.Errorf("member update: %q", out)
		}
		if out := cairnOK(t, eps, "", "member", "list"); !strings.Contains(out, "http://"+peer2) {
			t.Errorf("member list after update: %q", out)
		}
		if out := cairnOK(t, eps, "", "member", "remove", id); !regexp.MustCompile(`^Member +` + id + ` removed from cluster`).MatchString(out) {
			t.Errorf("member remove: %q", out)
		}
		cairnFails(t, eps, "", 1, []string{"Error: etcdserver: member not found"}, "member", "remove", id)
		cairnFails(t, eps, "", 1, []string{"Error: etcdserver: member not found"}, "member", "promote", id)
	})

	t.Run("status", func(t *testing.T) {
		out := cairnOK(t, eps, "", "status")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("status: %q", out)
		}
		leaders := 0
		for i, l := range lines {
			f := strings.Split(l, ", ")
			if len(f) != 10 || f[0] != eps[i] || c.Name(mustHex(t, f[1])) == "" || f[2] == "" || !strings.HasSuffix(f[3], "B") || f[5] != "false" {
				t.Errorf("status line %q", l)
			}
			if f[4] == "true" {
				leaders++
			}
		}
		if leaders != 1 {
			t.Errorf("status: %d leaders:\n%s", leaders, out)
		}
		table := cairnOK(t, eps, "", "status", "-w", "table")
		if !regexp.MustCompile(`(?m)^\| +ENDPOINT +\| +ID +\|`).MatchString(table) || !strings.Contains(table, "RAFT APPLIED INDEX") || strings.Count(table, "\n") != 7 {
			t.Errorf("status -w table:\n%s", table)
		}
		var js []struct {
			Endpoint string
			Status   struct {
				Version string
				Header  struct {
					MemberID string `json:"member_id"`
				}
			}
		}
		if err := json.Unmarshal([]byte(cairnOK(t, eps, "", "status", "-w", "json")), &js); err != nil || len(js) != 3 || js[0].Status.Version == "" {
			t.Errorf("status -w json: %+v %v", js, err)
		}
		if out := cairnOK(t, eps[:1], "", "status", "--cluster"); strings.Count(out, "\n") != 3 {
			t.Errorf("status --cluster: %q", out)
		}
		// One endpoint down: the others are printed, the exit code is 1.
		dead := servercluster.FreeAddr(t)
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		out, errOut, code := cairnCmd(ctx, "", "--endpoints", eps[0]+","+dead, "--command-timeout", "1s", "status")
		if code != 1 || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, "Failed to get the status of endpoint "+dead) {
			t.Errorf("status with a dead endpoint: code %d, stdout %q, stderr %q", code, out, errOut)
		}
	})

	t.Run("snapshot", func(t *testing.T) {
		dir := t.TempDir()
		file := filepath.Join(dir, "snap.db")
		wantOutput(t, "snapshot save", cairnOK(t, eps, "", "snapshot", "save", file), "Snapshot saved at "+file+"\n")
		st, err := os.Stat(file)
		if err != nil || st.Size() == 0 {
			t.Errorf("snapshot file: %v, %v", st, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("snapshot save left %d files in its directory", len(entries))
		}
		cairnFails(t, eps, "", 1, []string{"snapshot", "no such file or directory"}, "snapshot", "save", filepath.Join(dir, "missing", "snap.db"))
	})

	t.Run("compacted", func(t *testing.T) {
		cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		first, err := cli.Put(ctx, "c", "1")
		if err != nil {
			t.Fatal(err)
		}
		put, err := cli.Put(ctx, "c", "2")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Compact(ctx, put.Header.Revision); err != nil {
			t.Fatal(err)
		}
		old := strconv.FormatInt(first.Header.Revision, 10)
		cairnFails(t, eps, "", 1, []string{"Error: etcdserver: mvcc: required revision has been compacted"}, "get", "c", "--rev", old)
		cairnFails(t, eps, "", 1, []string{"Error: watch canceled: etcdserver: mvcc: required revision has been compacted",
			fmt.Sprintf("compacted up to revision %d", put.Header.Revision)}, "watch", "c", "--rev", old)
	})

	t.Run("request errors", func(t *testing.T) {
		cairnFails(t, eps, "", 1, []string{"Error: etcdserver: mvcc: required revision is a future revision"}, "get", "foo", "--rev", "1000000")
		cairnFails(t, eps, "", 1, []string{"Error: etcdserver: key is not provided"}, "put", "", "x")
	})

	t.Run("bad usage", func(t *testing.T) {
		for _, tc := range []struct {
			args  []string
			stdin string
			want  []string
		}{
			{args: []string{"get"}, want: []string{"cairn get", "between 1 and 2 arg(s), received 0"}},
			{args: []string{"get", "a", "b", "c"}, want: []string{"cairn get", "received 3"}},
			{args: []string{"get", "a", "--rev", "x"}, want: []string{"--rev", `"x"`}},
			{args: []string{"get", "a", "--no-such-flag"}, want: []string{"--no-such-flag"}},
			{args: []string{"get", "a", "-w", "yaml"}, want: []string{"--write-out", `"yaml"`, "simple, json, table"}},
			{args: []string{"get", "a", "b", "--prefix"}, want: []string{"RANGE_END", "--prefix"}},
			{args: []string{"get", "a", "--prefix", "--from-key"}, want: []string{"--prefix", "--from-key"}},
			{args: []string{"get", "a", "--consistency", "strong"}, want: []string{"--consistency", `"strong"`, "linearizable, lease, eventual"}},
			{args: []string{"get", "a", "--rev", "-1"}, want: []string{"--rev", "negative"}},
			{args: []string{"put", "a", "--lease", "xyz", "v"}, want: []string{"lease ID", `"xyz"`}},
			{args: []string{"lease", "grant", "soon"}, want: []string{"TTL", `"soon"`}},
			{args: []string{"lease", "revoke"}, want: []string{"cairn lease revoke", "1 arg"}},
			{args: []string{"lease", "frob"}, want: []string{`unknown command "frob"`}},
			{args: []string{"member", "remove", "n1"}, want: []string{"member ID", `"n1"`}},
			{args: []string{"member", "add", "n4"}, want: []string{"--peer-urls"}},
			{args: []string{"txn"}, stdin: "value(t/a) = 1\n\n\n", want: []string{"malformed comparison", "value(t/a)"}},
			{args: []string{"txn"}, stdin: "value(\"t/a\") ~ \"1\"\n\n\n", want: []string{"operator", `"~"`}},
			{args: []string{"txn"}, stdin: "\nfrob a\n\n", want: []string{"invalid txn request", "frob a"}},
			{args: []string{"txn"}, stdin: "\nput a\n\n", want: []string{"invalid txn request", "put needs KEY and VALUE"}},
			{args: []string{"txn", "extra"}, want: []string{"cairn txn", "extra"}},
			{args: []string{"watch", "a", "--max-events", "-2"}, want: []string{"--max-events"}},
			{args: []string{"status", "--dial-timeout", "0s"}, want: []string{"--dial-timeout"}},
		} {
			cairnFails(t, eps, tc.stdin, exitUsage, tc.want, tc.args...)
		}
		cairnFails(t, nil, "", exitUsage, []string{"--base-port", "70000"}, "local", "--base-port", "70000")
		// An unknown command is the root command's usage error, in its format.
		ctx0, cancel0 := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel0()
		if _, errOut, code := cairnCmd(ctx0, "", "frob"); code != exitUsage || !strings.Contains(errOut, `unknown command "frob"`) {
			t.Errorf("cairn frob: code %d, stderr %q", code, errOut)
		}
		// Usage errors send nothing: the key was not written.
		wantOutput(t, "get after bad put", cairnOK(t, eps, "", "get", "a"), "")
		// A usage error says where the help is.
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if _, errOut, _ := cairnCmd(ctx, "", "get"); !strings.Contains(errOut, "Run 'cairn get --help' for usage.") {
			t.Errorf("usage error without a pointer to help: %q", errOut)
		}
		if out, _, code := cairnCmd(ctx, "", "get", "--help"); code != 0 || !strings.Contains(out, "Exit codes:") {
			t.Errorf("get --help: code %d, %q", code, out)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		dead := servercluster.FreeAddr(t)
		for _, args := range [][]string{{"get", "a"}, {"put", "a", "b"}, {"status"}, {"member", "list"}, {"watch", "a"}, {"snapshot", "save", filepath.Join(t.TempDir(), "s")}} {
			start := time.Now()
			cairnFails(t, []string{dead}, "", exitUnreachable, []string{"cannot reach the cluster at " + dead, "connection refused"},
				append(args, "--dial-timeout", "500ms")...)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("%v took %v to give up", args, d)
			}
		}
	})
}

// readStats sums the members' read counters.
func readStats(c *servercluster.Cluster) engine.ReadStats {
	var sum engine.ReadStats
	for _, s := range c.Servers {
		st := s.DB().Engine().ReadStats()
		sum.Linearizable += st.Linearizable
		sum.Lease += st.Lease
		sum.Eventual += st.Eventual
	}
	return sum
}

func mustHex(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		t.Fatalf("not a hexadecimal id: %q", s)
	}
	return v
}

// TestMainExitCodes runs the binary itself: main must exit with cliMain's
// codes, and print client errors as etcdctl does.
func TestMainExitCodes(t *testing.T) {
	dead := servercluster.FreeAddr(t)
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{args: []string{"get", "--help"}, code: exitOK},
		{args: []string{"get"}, code: exitUsage, stderr: "Error: cairn get: accepts between 1 and 2 arg(s), received 0\nRun 'cairn get --help' for usage.\n"},
		{args: []string{"get", "a", "--endpoints", dead, "--dial-timeout", "300ms"}, code: exitUnreachable, stderr: "Error: cannot reach the cluster at " + dead},
	} {
		_, stderr, code := runMain(t, nil, tc.args...)
		if code != tc.code || !strings.HasPrefix(stderr, tc.stderr) {
			t.Errorf("cairn %v: exit %d, stderr %q; want exit %d, stderr starting %q", tc.args, code, stderr, tc.code, tc.stderr)
		}
	}
}
