package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/engine"
)

// writeFile writes text to a file in a temporary directory and returns its path.
func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cairn.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate(): %v", err)
	}
	want := map[string]any{
		"cluster.name":                                          "cairn",
		"cluster.member_name":                                   "default",
		"cluster.data_dir":                                      "cairn-data",
		"cluster.listen_client":                                 "127.0.0.1:2379",
		"cluster.listen_peer":                                   "127.0.0.1:2380",
		"raft.persistence.strategy":                             engine.DiskFirst,
		"raft.read_consistency.default_policy":                  engine.LinearizableRead,
		"raft.read_consistency.lease_duration_ms":               500,
		"raft.read_consistency.allow_client_override":           true,
		"raft.read_consistency.read_batching.size_threshold":    100,
		"raft.read_consistency.read_batching.time_threshold_ms": 10,
		"storage.quota_bytes":                                   int64(8 << 30),
		"storage.cache_size":                                    int64(64 << 20),
		"log.level":                                             "info",
		"log.format":                                            "text",
	}
	for name, w := range want {
		k, ok := lookupKey(name)
		if !ok {
			t.Fatalf("no key %s", name)
		}
		if got := reflect.ValueOf(c).FieldByIndex(k.index).Interface(); got != w {
			t.Errorf("default %s = %v, want %v", name, got, w)
		}
	}
}

// TestTemplate: Load of the template is Default, and every key is in it
// with a comment.
func TestTemplate(t *testing.T) {
	text := Template()
	got, err := Load(writeFile(t, text))
	if err != nil {
		t.Fatalf("Load(Template()): %v", err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Load(Template()) =\n%+v\nwant Default() =\n%+v", got, want)
	}
	used := map[string]bool{}
	lines := strings.Split(text, "\n")
	for _, name := range Keys() {
		d, ok := docOf(name)
		if !ok || d.text == "" {
			t.Errorf("key %s has no description", name)
		}
		for dk, dd := range keyDocs {
			if dd == d {
				used[dk] = true
			}
		}
		leaf := name[strings.LastIndex(name, ".")+1:]
		found := false
		for i, l := range lines {
			if strings.HasPrefix(l, leaf+" = ") && i > 0 && strings.HasPrefix(lines[i-1], "# ") {
				found = true
			}
		}
		if !found {
			t.Errorf("template has no commented line for %s", name)
		}
	}
	for dk := range keyDocs {
		if !used[dk] {
			t.Errorf("description of %s describes no key", dk)
		}
	}
	for _, l := range lines {
		if len(l) > 82 && strings.HasPrefix(l, "#") {
			t.Errorf("comment line too long (%d): %s", len(l), l)
		}
	}
}

func TestEnvNames(t *testing.T) {
	for key, env := range map[string]string{
		"cluster.data_dir":               "CAIRN_CLUSTER_DATA_DIR",
		"raft.persistence.strategy":      "CAIRN_RAFT_PERSISTENCE_STRATEGY",
		"network.bulk.max_message_size":  "CAIRN_NETWORK_BULK_MAX_MESSAGE_SIZE",
		"raft.election_tick":             "CAIRN_RAFT_ELECTION_TICK",
		"raft.watch.watcher_buffer_size": "CAIRN_RAFT_WATCH_WATCHER_BUFFER_SIZE",
	} {
		if got := EnvName(key); got != env {
			t.Errorf("EnvName(%s) = %s, want %s", key, got, env)
		}
		if _, ok := lookupKey(key); !ok {
			t.Errorf("no key %s", key)
		}
	}
	if n := len(keys()); n < 50 {
		t.Errorf("%d keys, want the ~60 of the file", n)
	}
}

// TestEnvEveryKey sets every key from the environment to its default, as Get
// gives it: every type parses, and nothing changes.
func TestEnvEveryKey(t *testing.T) {
	def := Default()
	var environ []string
	for _, name := range Keys() {
		v, ok := def.Get(name)
		if !ok {
			t.Fatalf("Get(%s): no such key", name)
		}
		environ = append(environ, EnvName(name)+"="+v)
	}
	c := Default()
	if err := c.ApplyEnv(environ); err != nil {
		t.Fatalf("ApplyEnv(defaults): %v", err)
	}
	if !reflect.DeepEqual(c, def) {
		t.Fatalf("ApplyEnv(defaults) changed the config:\n%+v\nwant\n%+v", c, def)
	}
}

// TestLayers: each layer overrides the one before: default < file < env < Set.
func TestLayers(t *testing.T) {
	file := writeFile(t, `
[cluster]
data_dir = "/from/file"
member_name = "file"
join = ["10.0.0.1:2379"]

[raft.persistence]
strategy = "MemFirst"
flush_policy = "Immediate"

[network.bulk]
max_message_size = 1_000_000

[log]
level = "debug"
`)
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	// The file overrides the defaults, and only what it sets.
	if c.Cluster.DataDir != "/from/file" || c.Cluster.MemberName != "file" || c.Raft.Persistence.Strategy != engine.MemFirst ||
		!c.Raft.Persistence.FlushPolicy.Immediate || c.Network.Bulk.MaxMessageSize != 1_000_000 || c.Log.Level != "debug" ||
		!reflect.DeepEqual(c.Cluster.Join, []string{"10.0.0.1:2379"}) {
		t.Fatalf("file not applied: %+v", c)
	}
	if c.Cluster.ListenClient != def.Cluster.ListenClient || c.Network.Bulk.QueueSize != def.Network.Bulk.QueueSize ||
		c.Raft.ElectionTick != def.Raft.ElectionTick {
		t.Fatalf("keys the file leaves out changed: %+v", c)
	}

	// The environment overrides the file.
	err = c.ApplyEnv([]string{
		"PATH=/bin", // not ours
		"CAIRN_CLUSTER_DATA_DIR=/from/env",
		"CAIRN_RAFT_PERSISTENCE_FLUSH_POLICY={ Batch = { threshold = 7, interval_ms = 3 } }",
		"CAIRN_NETWORK_BULK_MAX_MESSAGE_SIZE=2_000_000",
		"CAIRN_CLUSTER_JOIN=10.0.0.2:2379, 10.0.0.3:2379",
		"CAIRN_RAFT_DISABLE_PRE_VOTE=true",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.DataDir != "/from/env" || c.Network.Bulk.MaxMessageSize != 2_000_000 ||
		c.Raft.Persistence.FlushPolicy != (engine.FlushPolicy{Threshold: 7, Interval: 3 * time.Millisecond}) ||
		!reflect.DeepEqual(c.Cluster.Join, []string{"10.0.0.2:2379", "10.0.0.3:2379"}) || !c.Raft.DisablePreVote {
		t.Fatalf("environment not applied: %+v", c)
	}
	if c.Cluster.MemberName != "file" || c.Raft.Persistence.Strategy != engine.MemFirst || c.Log.Level != "debug" {
		t.Fatalf("keys the environment leaves out changed: %+v", c)
	}

	// Set (what flags call) overrides the environment.
	for key, value := range map[string]string{
		"cluster.data_dir":                 "/from/flag",
		"cluster.join":                     "10.0.0.4:2379",
		"log.level":                        "warn",
		"raft.persistence.flush_policy":    "Immediate",
		"network.bulk.max_message_size":    "3000000",
		"cluster.member_name":              "flag",
		"raft.rpc_compression.replication": "true",
	} {
		if err := c.Set(key, value); err != nil {
			t.Fatalf("Set(%s, %s): %v", key, value, err)
		}
	}
	if c.Cluster.DataDir != "/from/flag" || !reflect.DeepEqual(c.Cluster.Join, []string{"10.0.0.4:2379"}) ||
		c.Log.Level != "warn" || !c.Raft.Persistence.FlushPolicy.Immediate || c.Network.Bulk.MaxMessageSize != 3_000_000 ||
		c.Cluster.MemberName != "flag" || !c.Raft.RPCCompression.Replication {
		t.Fatalf("Set not applied: %+v", c)
	}
	if c.Raft.Persistence.Strategy != engine.MemFirst || !c.Raft.DisablePreVote {
		t.Fatalf("keys Set leaves out changed: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestReadConsistency: the [raft.read_consistency] keys from the file, the
// environment and Set reach the engine's configuration; the short policy
// names of the gRPC metadata are accepted too.
func TestReadConsistency(t *testing.T) {
	c, err := Load(writeFile(t, `
[raft.read_consistency]
default_policy = "LeaseRead"
lease_duration_ms = 300

[raft.read_consistency.read_batching]
size_threshold = 150
`))
	if err != nil {
		t.Fatal(err)
	}
	rc := c.Raft.ReadConsistency
	if rc.DefaultPolicy != engine.LeaseRead || rc.LeaseDurationMs != 300 || !rc.AllowClientOverride ||
		rc.ReadBatching != (engine.ReadBatchingConfig{SizeThreshold: 150, TimeThresholdMs: 10}) {
		t.Fatalf("file not applied: %+v", rc)
	}
	err = c.ApplyEnv([]string{
		"CAIRN_RAFT_READ_CONSISTENCY_DEFAULT_POLICY=eventual",
		"CAIRN_RAFT_READ_CONSISTENCY_ALLOW_CLIENT_OVERRIDE=false",
		"CAIRN_RAFT_READ_CONSISTENCY_READ_BATCHING_TIME_THRESHOLD_MS=50",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set("raft.read_consistency.lease_duration_ms", "200"); err != nil {
		t.Fatal(err)
	}
	rc = c.Raft.ReadConsistency
	want := engine.ReadConsistencyConfig{DefaultPolicy: engine.EventualConsistency, LeaseDurationMs: 200,
		ReadBatching: engine.ReadBatchingConfig{SizeThreshold: 150, TimeThresholdMs: 50}}
	if rc != want {
		t.Fatalf("environment and Set: %+v, want %+v", rc, want)
	}
	if v, _ := c.Get("raft.read_consistency.default_policy"); v != "EventualConsistency" {
		t.Errorf("Get(default_policy) = %q", v)
	}
	// In order: the last one (LeaseRead) is what ServerOptions sees below.
	for _, tc := range []struct {
		short string
		p     engine.ReadPolicy
	}{{"linearizable", engine.LinearizableRead}, {"lease", engine.LeaseRead}, {"eventual", engine.EventualConsistency}, {"LEASEREAD", engine.LeaseRead}} {
		if err := c.Set("raft.read_consistency.default_policy", tc.short); err != nil || c.Raft.ReadConsistency.DefaultPolicy != tc.p {
			t.Errorf("Set(default_policy, %s): %v, %s", tc.short, err, c.Raft.ReadConsistency.DefaultPolicy)
		}
	}
	o, err := c.ServerOptions()
	if err != nil {
		t.Fatal(err)
	}
	want.DefaultPolicy = engine.LeaseRead
	if got := o.DB.Engine.ReadConsistency; got != want {
		t.Fatalf("engine config: %+v, want %+v", got, want)
	}
	// The override switch stays off in the engine (its zero value is not
	// taken for "unset" when other fields are set).
	e := o.DB.Engine
	e.NodeID, e.StateMachine = 1, validateOnly{}
	if err := e.Validate(); err != nil || e.ReadConsistency.AllowClientOverride {
		t.Fatalf("engine Validate: %v, %+v", err, e.ReadConsistency)
	}
	if _, err := e.ReadConsistency.Resolve(engine.LinearizableRead); !errors.Is(err, engine.ErrOverrideNotAllowed) {
		t.Fatalf("Resolve with overrides off: %v", err)
	}
}

// TestBadValues: every bad value is an error naming the key (or variable)
// and the value, and Load, ApplyEnv and Set change nothing.
func TestBadValues(t *testing.T) {
	cases := []struct {
		name string
		file string   // a file to Load
		env  []string // variables to apply to Default
		set  [2]string
		edit func(c *Config) // a change to Default, then Validate
		want []string        // substrings of the error
	}{
		{name: "bad strategy", file: "[raft.persistence]\nstrategy = \"Sometimes\"\n",
			want: []string{"cairn.toml:2", "raft.persistence.strategy", `"Sometimes"`, `"DiskFirst" or "MemFirst"`}},
		{name: "bad flush policy", file: "[raft.persistence]\nflush_policy = { Batch = { threshold = 0, interval_ms = 5 } }\n",
			want: []string{"raft.persistence.flush_policy", "threshold = 0", "at least 1"}},
		{name: "election tick not above heartbeat", file: "[raft]\nelection_tick = 2\nheartbeat_tick = 2\n",
			want: []string{"raft.election_tick = 2", "greater than raft.heartbeat_tick"}},
		{name: "zero tick", file: "[raft]\ntick_ms = 0\n", want: []string{"raft.tick_ms = 0", "at least 1"}},
		{name: "negative watch buffer", file: "[raft.watch]\nwatcher_buffer_size = -5\n",
			want: []string{"raft.watch.watcher_buffer_size = -5", "at least 1"}},
		{name: "negative unsigned size", file: "[raft]\nmax_size_per_msg = -1\n",
			want: []string{"raft.max_size_per_msg = -1", "from 1 to"}},
		{name: "negative quota", file: "[storage]\nquota_bytes = -1\n", want: []string{"storage.quota_bytes = -1", "at least 1"}},
		{name: "small window", file: "[network.data]\nconnection_window_size = 1000\n",
			want: []string{"network.data.connection_window_size = 1000", "at least 65536"}},
		{name: "window out of range", file: "[network.bulk]\nstream_window_size = 99_999_999_999\n",
			want: []string{"network.bulk.stream_window_size = 99999999999", "from 1 to 2147483647"}},
		{name: "wrong type", file: "[raft]\nelection_tick = \"ten\"\n",
			want: []string{"cairn.toml:2", "raft.election_tick", `"ten"`, "must be an integer"}},
		{name: "catch-up margin", file: "[raft.snapshot]\nthreshold = 10\ncatch_up_margin = 1000\n",
			want: []string{"raft.snapshot.catch_up_margin = 1000", "at most 10"}},
		{name: "bad read policy", file: "[raft.read_consistency]\ndefault_policy = \"Strong\"\n",
			want: []string{"cairn.toml:2", "raft.read_consistency.default_policy", `"Strong"`, `"LinearizableRead", "LeaseRead" or "EventualConsistency"`}},
		{name: "lease not shorter than the election timeout", file: "[raft.read_consistency]\nlease_duration_ms = 900\n",
			want: []string{"raft.read_consistency.lease_duration_ms = 900", "shorter than the election timeout", "900 ms", "1000 ms"}},
		{name: "lease too long for a faster tick", file: "[raft]\ntick_ms = 10\n",
			want: []string{"raft.read_consistency.lease_duration_ms = 500", "raft.election_tick", "raft.tick_ms", "90 ms"}},
		{name: "zero lease", file: "[raft.read_consistency]\nlease_duration_ms = 0\n",
			want: []string{"raft.read_consistency.lease_duration_ms = 0", "at least 1"}},
		{name: "lease reads without check quorum", file: "[raft]\ndisable_check_quorum = true\n[raft.read_consistency]\ndefault_policy = \"LeaseRead\"\n",
			want: []string{"raft.read_consistency.default_policy", `"LeaseRead"`, "CheckQuorum", "raft.disable_check_quorum"}},
		{name: "zero size threshold", file: "[raft.read_consistency.read_batching]\nsize_threshold = 0\n",
			want: []string{"raft.read_consistency.read_batching.size_threshold = 0", "at least 1"}},
		{name: "negative time threshold", file: "[raft.read_consistency.read_batching]\ntime_threshold_ms = -10\n",
			want: []string{"raft.read_consistency.read_batching.time_threshold_ms = -10", "at least 1"}},
		{name: "bad read policy variable", env: []string{"CAIRN_RAFT_READ_CONSISTENCY_DEFAULT_POLICY=strict"},
			want: []string{"CAIRN_RAFT_READ_CONSISTENCY_DEFAULT_POLICY", `"strict"`, `"LinearizableRead", "LeaseRead" or "EventualConsistency"`}},
		{name: "bad override variable", env: []string{"CAIRN_RAFT_READ_CONSISTENCY_ALLOW_CLIENT_OVERRIDE=sometimes"},
			want: []string{"CAIRN_RAFT_READ_CONSISTENCY_ALLOW_CLIENT_OVERRIDE", `"sometimes"`, "true or false"}},
		{name: "non-numeric batching variable", env: []string{"CAIRN_RAFT_READ_CONSISTENCY_READ_BATCHING_SIZE_THRESHOLD=many"},
			want: []string{"CAIRN_RAFT_READ_CONSISTENCY_READ_BATCHING_SIZE_THRESHOLD", `"many"`, "must be an integer"}},
		{name: "unknown key in file", file: "[raft]\nelection_ticks = 3\n",
			want: []string{"raft.election_ticks", "unknown key", "did you mean raft.election_tick"}},
		{name: "unknown section in file", file: "[tracing]\naddress = \"127.0.0.1:4317\"\n",
			want: []string{"tracing.address", "unknown key"}},
		{name: "bad metrics address", file: "[metrics]\naddress = \"localhost\"\n",
			want: []string{"metrics.address", `"localhost"`, "HOST:PORT"}},
		{name: "pprof without a metrics listener", file: "[metrics]\npprof = true\n",
			want: []string{"metrics.pprof", "needs metrics.address"}},
		{name: "syntax error", file: "[raft\n", want: []string{"cairn.toml:"}},
		{name: "bad initial cluster element", file: "[cluster]\ninitial_cluster = \"default=127.0.0.1:2380,n2\"\n",
			want: []string{"cluster.initial_cluster", `"default=127.0.0.1:2380,n2"`, `element "n2"`, "NAME=HOST:PORT"}},
		{name: "bad initial cluster address", file: "[cluster]\ninitial_cluster = \"default=localhost\"\n",
			want: []string{"cluster.initial_cluster", `element "default=localhost"`, "HOST:PORT"}},
		{name: "initial cluster without this member", file: "[cluster]\ninitial_cluster = \"n1=10.0.0.1:2380\"\n",
			want: []string{"cluster.initial_cluster", `"n1=10.0.0.1:2380"`, "does not list this member", `"default"`}},
		{name: "duplicate member", file: "[cluster]\ninitial_cluster = \"default=10.0.0.1:2380,default=10.0.0.2:2380\"\n",
			want: []string{"cluster.initial_cluster", "listed twice"}},
		{name: "initial cluster and join", file: "[cluster]\ninitial_cluster = \"default=10.0.0.1:2380\"\njoin = [\"10.0.0.2:2379\"]\n",
			want: []string{"cluster.join", `["10.0.0.2:2379"]`, "must be empty when cluster.initial_cluster is set"}},
		{name: "bad join address", file: "[cluster]\njoin = [\"10.0.0.2\"]\n",
			want: []string{"cluster.join", `element "10.0.0.2"`, "HOST:PORT"}},
		{name: "bad listen address", file: "[cluster]\nlisten_client = \"localhost\"\n",
			want: []string{"cluster.listen_client", `"localhost"`, "HOST:PORT"}},
		{name: "empty data dir", file: "[cluster]\ndata_dir = \"\"\n", want: []string{"cluster.data_dir", "must not be empty"}},
		{name: "request above proposal", file: "[storage]\nmax_request_bytes = 2_000_000\n",
			want: []string{"storage.max_request_bytes = 2000000", "at most raft.max_proposal_bytes (1572864)"}},
		{name: "bad log level", file: "[log]\nlevel = \"verbose\"\n",
			want: []string{"log.level", `"verbose"`, `"debug", "info", "warn" or "error"`}},
		{name: "bad log format", edit: func(c *Config) { c.Log.Format = "xml" }, want: []string{"log.format", `"xml"`, `"text" or "json"`}},
		{name: "unknown variable", env: []string{"CAIRN_CLUSTER_DATADIR=/x"},
			want: []string{"CAIRN_CLUSTER_DATADIR", "unknown variable", "did you mean CAIRN_CLUSTER_DATA_DIR"}},
		{name: "non-numeric variable", env: []string{"CAIRN_RAFT_ELECTION_TICK=ten"},
			want: []string{"CAIRN_RAFT_ELECTION_TICK", "raft.election_tick", `"ten"`, "must be an integer"}},
		{name: "bad boolean variable", env: []string{"CAIRN_RAFT_RPC_COMPRESSION_CLIENT=yes please"},
			want: []string{"CAIRN_RAFT_RPC_COMPRESSION_CLIENT", `"yes please"`, "true or false"}},
		{name: "bad strategy variable", env: []string{"CAIRN_RAFT_PERSISTENCE_STRATEGY=Sometimes"},
			want: []string{"CAIRN_RAFT_PERSISTENCE_STRATEGY", `"Sometimes"`, `"DiskFirst" or "MemFirst"`}},
		{name: "bad flush policy variable", env: []string{"CAIRN_RAFT_PERSISTENCE_FLUSH_POLICY=Later"},
			want: []string{"CAIRN_RAFT_PERSISTENCE_FLUSH_POLICY", `"Later"`, `"Immediate" or`}},
		{name: "variable out of range", env: []string{"CAIRN_NETWORK_CONTROL_STREAM_WINDOW_SIZE=3000000000"},
			want: []string{"CAIRN_NETWORK_CONTROL_STREAM_WINDOW_SIZE", `"3000000000"`, "from 1 to 2147483647"}},
		{name: "bad variable among good ones", env: []string{"CAIRN_CLUSTER_DATA_DIR=/ok", "CAIRN_LOG_LEVEL=info", "CAIRN_NOPE=1"},
			want: []string{"CAIRN_NOPE", "unknown variable"}},
		{name: "unknown key set", set: [2]string{"cluster.datadir", "/x"},
			want: []string{"cluster.datadir", "unknown key", "did you mean cluster.data_dir"}},
		{name: "non-numeric set", set: [2]string{"raft.heartbeat_tick", "1s"},
			want: []string{"raft.heartbeat_tick", `"1s"`, "must be an integer"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			c := Default()
			switch {
			case tc.file != "":
				c, err = Load(writeFile(t, tc.file))
				if err == nil {
					err = c.Validate()
				} else if !reflect.DeepEqual(c, Config{}) {
					t.Errorf("Load failed but returned a config: %+v", c)
				}
			case tc.env != nil:
				err = c.ApplyEnv(tc.env)
				if !reflect.DeepEqual(c, Default()) {
					t.Errorf("ApplyEnv failed but changed the config: %+v", c)
				}
			case tc.set[0] != "":
				err = c.Set(tc.set[0], tc.set[1])
				if !reflect.DeepEqual(c, Default()) {
					t.Errorf("Set failed but changed the config: %+v", c)
				}
			default:
				tc.edit(&c)
				err = c.Validate()
			}
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(%q, ErrInvalid) is false", err)
			}
			if _, serr := c.ServerOptions(); tc.file != "" && serr == nil && !reflect.DeepEqual(c, Config{}) {
				t.Errorf("ServerOptions accepted a config Validate refuses")
			}
		})
	}
}

// TestValidateReportsEveryValue: Validate reports all bad values at once.
func TestValidateReportsEveryValue(t *testing.T) {
	c := Default()
	c.Cluster.Name = ""
	c.Raft.TickMs = -1
	c.Log.Level = "loud"
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"cluster.name", "raft.tick_ms = -1", `log.level = "loud"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("no *Error in %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.toml"))
	if err == nil || !strings.Contains(err.Error(), "missing.toml") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want a not-exist error naming the file", err)
	}
}

func TestServerOptions(t *testing.T) {
	var logs bytes.Buffer
	c := Default()
	c.Cluster.Name = "prod"
	c.Cluster.MemberName = "n2"
	c.Cluster.DataDir = "/data"
	c.Cluster.ListenPeer = "0.0.0.0:2380"
	c.Cluster.ListenClient = ":2379"
	c.Cluster.AdvertiseClient = "10.0.0.2:2379"
	c.Cluster.InitialCluster = "n1=10.0.0.1:2380, n2=http://10.0.0.2:2380,n3=10.0.0.3:2380"
	c.Raft.ElectionTick = 20
	c.Raft.Persistence.Strategy = engine.MemFirst
	c.Raft.Watch.MaxWatchers = 7
	c.Raft.RPCCompression.Client = true
	c.Network.Bulk.QueueSize = 3
	c.Storage.QuotaBytes = 1 << 30
	c.Storage.CacheSize = 1 << 20
	c.Storage.MaxRequestBytes = 1000
	c.Log = Log{Level: "warn", Format: "json", Output: &logs}
	o, err := c.ServerOptions()
	if err != nil {
		t.Fatal(err)
	}
	e := o.DB.Engine
	if e.NodeID != 0 || e.ClusterName != "prod" || e.DataDir != "/data" || e.ListenPeer != "0.0.0.0:2380" ||
		e.Raft.ElectionTick != 20 || e.Persistence.Strategy != engine.MemFirst || e.Network.Bulk.QueueSize != 3 ||
		e.Storage.PebbleCacheBytes != 1<<20 || !e.Compression.Snapshot || e.StateMachine != nil {
		t.Errorf("engine config: %+v", e)
	}
	if o.DB.KV.Watch.MaxWatchers != 7 {
		t.Errorf("watch config: %+v", o.DB.KV.Watch)
	}
	wantMembers := map[string]string{"n1": "10.0.0.1:2380", "n2": "10.0.0.2:2380", "n3": "10.0.0.3:2380"}
	if o.Name != "n2" || !reflect.DeepEqual(o.InitialCluster, wantMembers) || o.Join != nil ||
		o.ListenClient != ":2379" || o.AdvertiseClient != "http://10.0.0.2:2379" || o.QuotaBytes != 1<<30 ||
		o.MaxRequestBytes != 1000 || !o.CompressResponses {
		t.Errorf("options: %+v", o)
	}
	if o.Logger == nil || e.Logger != o.Logger || o.DB.KV.Watch.Logger != o.Logger {
		t.Fatalf("loggers: server %p engine %p watch %p", o.Logger, e.Logger, o.DB.KV.Watch.Logger)
	}
	o.Logger.Info("hidden")
	o.Logger.Warn("shown", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(logs.Bytes(), &rec); err != nil || rec["msg"] != "shown" {
		t.Fatalf("log output %q (%v): want one JSON record of the warning", logs.String(), err)
	}

	c = Default()
	c.Cluster.Join = []string{"http://10.0.0.1:2379", "10.0.0.2:2379"}
	o, err = c.ServerOptions()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o.Join, []string{"10.0.0.1:2379", "10.0.0.2:2379"}) || o.InitialCluster != nil {
		t.Errorf("join: %+v", o)
	}
}

// TestEventThresholds: [storage] slow_fsync_ms and flush_lag_threshold reach
// the engine; a flush lag threshold the MemFirst batch policy reaches in
// normal operation is refused, naming both keys.
func TestEventThresholds(t *testing.T) {
	c, err := Load(writeFile(t, `
[storage]
slow_fsync_ms = 250
flush_lag_threshold = 9000
`))
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.ServerOptions()
	if err != nil {
		t.Fatal(err)
	}
	if e := o.DB.Engine; e.SlowFsyncThreshold != 250*time.Millisecond || e.FlushLagThreshold != 9000 {
		t.Fatalf("engine thresholds: %v, %d", e.SlowFsyncThreshold, e.FlushLagThreshold)
	}
	c, err = Load(writeFile(t, `
[raft.persistence]
strategy = "MemFirst"
flush_policy = { Batch = { threshold = 5000, interval_ms = 100 } }
[storage]
flush_lag_threshold = 4000
`))
	if err == nil {
		err = c.Validate()
	}
	if err == nil || !strings.Contains(err.Error(), "storage.flush_lag_threshold") || !strings.Contains(err.Error(), "flush_policy") {
		t.Fatalf("a flush lag threshold under the batch threshold: %v", err)
	}
}
