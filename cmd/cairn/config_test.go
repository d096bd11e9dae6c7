package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/config"
)

func TestConfigDefault(t *testing.T) {
	var out bytes.Buffer
	root := newRootCmdEnv(nil)
	root.SetArgs([]string{"config", "default"})
	root.SetOut(&out)
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if out.String() != config.Template() {
		t.Fatalf("config default printed something else than config.Template():\n%s", out.String())
	}
}

// TestConfigValidate runs the binary: exit status 0 and "FILE: ok" for a
// good file, 1 and the errors naming file, key and value for a bad one.
func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good.toml", "[cluster]\nmember_name = \"n1\"\ninitial_cluster = \"n1=10.0.0.1:2380,n2=10.0.0.2:2380\"\n")
	template := write("template.toml", config.Template())
	bad := write("bad.toml", "[raft]\nelection_tick = 1\n\n[log]\nlevel = \"verbose\"\n")
	unknown := write("unknown.toml", "[raft]\nelection_ticks = 3\n")

	for _, tc := range []struct {
		file     string
		env      []string
		wantCode int
		stdout   string
		stderr   []string
	}{
		{file: good, stdout: good + ": ok\n"},
		{file: template, stdout: template + ": ok\n"},
		{file: bad, wantCode: 1, stderr: []string{
			"cairn: 2 errors:",
			bad + `: log.level = "verbose": must be "debug", "info", "warn" or "error"`,
		}},
		{file: unknown, wantCode: 1, stderr: []string{
			"cairn: " + unknown + ": raft.election_ticks: unknown key (did you mean raft.election_tick?)",
		}},
		{file: good, env: []string{"CAIRN_LOG_LEVEL=loud"}, wantCode: 1, stderr: []string{
			`cairn: CAIRN_LOG_LEVEL: log.level = "loud": must be`,
		}},
		{file: good, env: []string{"CAIRN_RAFT_ELECTION_TICK=x"}, wantCode: 1, stderr: []string{
			`cairn: CAIRN_RAFT_ELECTION_TICK: raft.election_tick = "x": must be an integer`,
		}},
		{file: filepath.Join(dir, "missing.toml"), wantCode: 1, stderr: []string{"missing.toml", "no such file"}},
	} {
		stdout, stderr, code := runMain(t, tc.env, "config", "validate", tc.file)
		if code != tc.wantCode {
			t.Errorf("config validate %s (env %v): exit %d, want %d; stderr:\n%s", tc.file, tc.env, code, tc.wantCode, stderr)
		}
		if stdout != tc.stdout {
			t.Errorf("config validate %s (env %v): stdout %q, want %q", tc.file, tc.env, stdout, tc.stdout)
		}
		for _, w := range tc.stderr {
			if !strings.Contains(stderr, w) {
				t.Errorf("config validate %s (env %v): stderr %q does not contain %q", tc.file, tc.env, stderr, w)
			}
		}
	}
}
