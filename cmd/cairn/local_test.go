package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startLocal runs `cairn local` with args in-process and waits until it
// prints its endpoints. Cancel the context to stop it (as Ctrl-C does); the
// channel is then closed, and code holds the exit code.
func startLocal(t *testing.T, args ...string) (context.CancelFunc, <-chan struct{}, *int, *syncBuffer, *syncBuffer, []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan struct{})
	code := new(int)
	go func() {
		defer close(done)
		*code = cliMain(ctx, append([]string{"local"}, args...), strings.NewReader(""), &out, &errb)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Errorf("cairn local did not stop in %v", waitTimeout)
		}
	})
	re := regexp.MustCompile(`(?m)^endpoints: (\S+)$`)
	deadline := time.After(waitTimeout)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return cancel, done, code, &out, &errb, strings.Split(m[1], ",")
		}
		select {
		case <-done:
			t.Fatalf("cairn local exited with %d before printing its endpoints; stdout:\n%s\nstderr:\n%s", *code, out.String(), errb.String())
		case <-deadline:
			t.Fatalf("cairn local printed no endpoints in %v; stdout:\n%s\nstderr:\n%s", waitTimeout, out.String(), errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestLocal: cairn local on free ports reaches ready, prints its endpoints
// and an example, serves a put and a get through them, and stops cleanly,
// removing its temporary data.
func TestLocal(t *testing.T) {
	cancel, done, code, out, errb, eps := startLocal(t, "--base-port", "0")
	if len(eps) != 3 {
		t.Fatalf("endpoints %v, want 3", eps)
	}
	list := strings.Join(eps, ",")
	for _, want := range []string{"infra1", "infra2", "infra3", "cairn --endpoints " + list + " put foo bar"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not contain %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`data in (\S+), removed at exit`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("output does not say where the data is:\n%s", out)
	}
	dataDir := m[1]

	// The example line, exactly as printed.
	ctx, cancelCmd := context.WithTimeout(context.Background(), waitTimeout)
	defer cancelCmd()
	if o, e, code := cairnCmd(ctx, "", "--endpoints", list, "put", "foo", "bar"); code != 0 || o != "OK\n" {
		t.Fatalf("put: code %d, %q %q", code, o, e)
	}
	for _, ep := range eps {
		wantOutput(t, "get from "+ep, cairnOK(t, []string{ep}, "", "get", "foo"), "foo\nbar\n")
	}
	members := cairnOK(t, eps, "", "member", "list")
	if strings.Count(members, ", started, infra") != 3 {
		t.Errorf("member list:\n%s", members)
	}

	cancel()
	select {
	case <-done:
		if *code != 0 {
			t.Errorf("cairn local exited with %d; stderr:\n%s", *code, errb)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("cairn local did not stop in %v", waitTimeout)
	}
	if !strings.Contains(errb.String(), "cairn local: stopped") {
		t.Errorf("stderr does not say it stopped:\n%s", errb)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary data dir %s left behind (%v)", dataDir, err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel2()
	if _, _, code := cairnCmd(ctx2, "", "--endpoints", eps[0], "--dial-timeout", "300ms", "get", "foo"); code != exitUnreachable {
		t.Errorf("get after stop: exit code %d, want %d", code, exitUnreachable)
	}
}

// TestLocalDataDir: with --data-dir the data is kept, and a second run
// starts the same cluster again with its keys.
func TestLocalDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "local")
	cancel, done, code, _, _, eps := startLocal(t, "--base-port", "0", "--data-dir", dir, "--log-level", "error")
	cairnOK(t, eps, "", "put", "kept", "yes")
	cancel()
	<-done
	if *code != 0 {
		t.Fatalf("first run exited with %d", *code)
	}
	for _, name := range localMembers {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("member data: %v", err)
		}
	}
	_, _, _, _, _, eps = startLocal(t, "--base-port", "0", "--data-dir", dir, "--log-level", "error")
	wantOutput(t, "get after restart", cairnOK(t, eps, "", "get", "kept"), "kept\nyes\n")
}
