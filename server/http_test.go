package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/internal/servercluster"
	"github.com/cairn-db/cairn/server"
)

// httpClient keeps no idle connections, so none outlives a test (goleak).
var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// get fetches http://addr+path and returns its status code and body.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := httpClient.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// scrape reads /metrics at addr, parsed.
func scrape(t *testing.T, addr string) metricFamilies {
	t.Helper()
	resp, err := httpClient.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: parse: %v", err)
	}
	return fams
}

type metricFamilies map[string]*dto.MetricFamily

// value is the value of the sample of family name whose labels include
// labels (name=value pairs): a gauge's or counter's value, a histogram's
// count. It fails the test if there is none.
func (f metricFamilies) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	v, ok := f.lookup(name, labels...)
	if !ok {
		t.Fatalf("no sample %s%v in the scrape", name, labels)
	}
	return v
}

func (f metricFamilies) lookup(name string, labels ...string) (float64, bool) {
	fam, ok := f[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range fam.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func withMetrics(pprof bool) func(string, *server.Options) {
	return func(_ string, o *server.Options) {
		o.MetricsAddr = "127.0.0.1:0"
		o.Pprof = pprof
	}
}

// TestMetricsOneNode drives a one-node server through clientv3 and checks
// that its metrics move with what was done, and that /health and /ready
// answer.
func TestMetricsOneNode(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{Nodes: 1, Tune: withMetrics(false)})
	ctx := ctxT(t, 30*time.Second)
	s := c.Servers["n1"]
	addr := s.MetricsAddr()
	if addr == "" {
		t.Fatal("MetricsAddr is empty with a metrics address set")
	}
	cl := newClient(t, c.Endpoints()...)

	const puts = 5
	for i := range puts {
		if _, err := cl.Put(ctx, fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Get(ctx, "k", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, addr)
	applied := m.value(t, "cairn_raft_applied_index")
	if applied <= 0 {
		t.Errorf("cairn_raft_applied_index = %v, want > 0", applied)
	}
	if v := m.value(t, "cairn_raft_is_leader"); v != 1 {
		t.Errorf("cairn_raft_is_leader = %v on a one-node cluster, want 1", v)
	}
	if v := m.value(t, "cairn_raft_has_leader"); v != 1 {
		t.Errorf("cairn_raft_has_leader = %v, want 1", v)
	}
	if v := m.value(t, "cairn_raft_term"); v < 1 {
		t.Errorf("cairn_raft_term = %v, want ≥ 1", v)
	}
	// Events reach the metrics through the engine's reporter goroutine.
	waitFor(t, ctx, "cairn_raft_leader_changes_seen_total ≥ 1", func() bool {
		return scrape(t, addr).value(t, "cairn_raft_leader_changes_seen_total") >= 1
	})
	if v := m.value(t, "cairn_storage_fsync_duration_seconds"); v <= 0 {
		t.Errorf("cairn_storage_fsync_duration_seconds has %v samples under DiskFirst, want > 0", v)
	}
	if v := m.value(t, "cairn_storage_flush_lag_entries"); v != 0 {
		t.Errorf("cairn_storage_flush_lag_entries = %v under DiskFirst, want 0", v)
	}
	if v := m.value(t, "cairn_storage_db_size_bytes"); v <= 0 {
		t.Errorf("cairn_storage_db_size_bytes = %v, want > 0", v)
	}
	if v := m.value(t, "cairn_mvcc_revision"); v < puts+1 {
		t.Errorf("cairn_mvcc_revision = %v, want ≥ %d", v, puts+1)
	}
	if v := m.value(t, "grpc_server_handled_total", "grpc_service", "etcdserverpb.KV", "grpc_method", "Put", "grpc_code", "OK"); v < puts {
		t.Errorf("grpc_server_handled_total for KV/Put = %v, want ≥ %d", v, puts)
	}
	if v := m.value(t, "grpc_server_handling_seconds", "grpc_service", "etcdserverpb.KV", "grpc_method", "Range"); v < 1 {
		t.Errorf("grpc_server_handling_seconds for KV/Range has %v samples, want ≥ 1", v)
	}
	if v := m.value(t, "cairn_reads_total", "policy", "linearizable"); v < 1 {
		t.Errorf("cairn_reads_total{policy=linearizable} = %v, want ≥ 1", v)
	}
	m.value(t, "cairn_read_index_rounds_total", "reason", "idle")
	m.value(t, "go_goroutines")

	// More writes move the applied index.
	for i := range puts {
		if _, err := cl.Put(ctx, fmt.Sprintf("k%d", i), "w"); err != nil {
			t.Fatal(err)
		}
	}
	if v := scrape(t, addr).value(t, "cairn_raft_applied_index"); v < applied+puts {
		t.Errorf("cairn_raft_applied_index = %v after %d more puts, want ≥ %v", v, puts, applied+puts)
	}

	// Watchers and leases are counted.
	wctx, cancel := context.WithCancel(ctx)
	w1 := cl.Watch(wctx, "w1", clientv3.WithCreatedNotify())
	w2 := cl.Watch(wctx, "w", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	<-w1
	<-w2
	if v := scrape(t, addr).value(t, "cairn_watch_watchers"); v != 2 {
		t.Errorf("cairn_watch_watchers = %v with 2 watches open, want 2", v)
	}
	cancel()
	waitFor(t, ctx, "the watchers gauge drops to 0 once the watches end", func() bool {
		return scrape(t, addr).value(t, "cairn_watch_watchers") == 0
	})
	if v := scrape(t, addr).value(t, "cairn_leases"); v != 0 {
		t.Errorf("cairn_leases = %v before any grant, want 0", v)
	}
	if _, err := cl.Grant(ctx, 60); err != nil {
		t.Fatal(err)
	}
	if v := scrape(t, addr).value(t, "cairn_leases"); v != 1 {
		t.Errorf("cairn_leases = %v after a grant, want 1", v)
	}

	// Health and readiness.
	if code, body := get(t, addr, "/health"); code != http.StatusOK || !isHealth(body, "true") {
		t.Errorf("/health = %d %s, want 200 with health true", code, body)
	}
	if code, body := get(t, addr, "/ready"); code != http.StatusOK {
		t.Errorf("/ready = %d %s after Ready, want 200", code, body)
	}
	if code, _ := get(t, addr, "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ = %d with pprof off, want 404", code)
	}

	// Shutdown closes the listener.
	c.Stop(t, "n1")
	if _, err := httpClient.Get("http://" + addr + "/metrics"); err == nil {
		t.Error("the metrics listener still answers after Shutdown")
	}
}

func isHealth(body, want string) bool {
	var h struct{ Health, Reason string }
	return json.Unmarshal([]byte(body), &h) == nil && h.Health == want
}

// TestMetricsPprof: with pprof on, the profiles are served on the metrics
// listener.
func TestMetricsPprof(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{Nodes: 1, Tune: withMetrics(true)})
	addr := c.Servers["n1"].MetricsAddr()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		if code, _ := get(t, addr, path); code != http.StatusOK {
			t.Errorf("%s = %d with pprof on, want 200", path, code)
		}
	}
	if code, _ := get(t, addr, "/metrics"); code != http.StatusOK {
		t.Errorf("/metrics = %d, want 200", code)
	}
}

// TestMetricsOff: by default there is no listener.
func TestMetricsOff(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{Nodes: 1})
	if a := c.Servers["n1"].MetricsAddr(); a != "" {
		t.Errorf("MetricsAddr = %q with no metrics address, want \"\"", a)
	}
}

// TestMetricsOptionsRefused: a bad metrics address, or pprof without a
// listener, is refused by New.
func TestMetricsOptionsRefused(t *testing.T) {
	for _, o := range []server.Options{
		{MetricsAddr: "nonsense"},
		{Pprof: true},
	} {
		o.DB.Engine.DataDir = t.TempDir()
		if _, err := server.New(o); !errors.Is(err, server.ErrInvalidOptions) {
			t.Errorf("New(MetricsAddr %q, Pprof %v) = %v, want ErrInvalidOptions", o.MetricsAddr, o.Pprof, err)
		}
	}
}

// TestHealthAndReadyWithoutLeader: a member started alone in a cluster of
// three never has a leader: /health and /ready answer 503, /metrics still
// answers.
func TestHealthAndReadyWithoutLeader(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	peer := servercluster.FreeAddr(t)
	o := server.Options{
		Name:         "n1",
		ListenClient: "127.0.0.1:0",
		MetricsAddr:  "127.0.0.1:0",
		InitialCluster: map[string]string{
			"n1": peer, "n2": servercluster.FreeAddr(t), "n3": servercluster.FreeAddr(t),
		},
		Logger: quiet,
	}
	o.DB.Engine = engine.Config{DataDir: filepath.Join(t.TempDir(), "n1"), ListenPeer: peer,
		Raft: engine.RaftConfig{TickMs: 10, ElectionTick: 20, HeartbeatTick: 2}, Logger: quiet}
	s, err := server.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	addr := s.MetricsAddr()
	if code, body := get(t, addr, "/health"); code != http.StatusServiceUnavailable || !isHealth(body, "false") {
		t.Errorf("/health = %d %s without a leader, want 503 with health false", code, body)
	}
	if code, body := get(t, addr, "/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/ready = %d %s before Ready, want 503", code, body)
	}
	m := scrape(t, addr)
	if v := m.value(t, "cairn_raft_has_leader"); v != 0 {
		t.Errorf("cairn_raft_has_leader = %v, want 0", v)
	}
}

// TestHealthOfCutMember: in a cluster of three, a member cut off from its
// peers reports 503 on /health once it has lost its leader, and 200 again
// once the partition heals; the others stay healthy.
func TestHealthOfCutMember(t *testing.T) {
	c := servercluster.New(t, servercluster.Options{Memnet: true, Tune: withMetrics(false)})
	ctx := ctxT(t, 60*time.Second)
	leader := c.Leader(t)
	var cut string
	for _, n := range c.Names() {
		if n != leader {
			cut = n
			break
		}
	}
	addr := c.Servers[cut].MetricsAddr()
	if code, body := get(t, addr, "/health"); code != http.StatusOK {
		t.Fatalf("/health of %s = %d %s before the cut, want 200", cut, code, body)
	}
	if v := scrape(t, c.Servers[leader].MetricsAddr()).value(t, "cairn_raft_is_leader"); v != 1 {
		t.Errorf("cairn_raft_is_leader of the leader = %v, want 1", v)
	}
	if v := scrape(t, addr).value(t, "cairn_raft_is_leader"); v != 0 {
		t.Errorf("cairn_raft_is_leader of a follower = %v, want 0", v)
	}
	c.Net.Isolate(c.ID(cut))
	waitFor(t, ctx, "the cut member loses its leader", func() bool {
		l, _, _ := c.Servers[cut].DB().Engine().Leader()
		return l == 0
	})
	code, body := get(t, addr, "/health")
	if code != http.StatusServiceUnavailable || !isHealth(body, "false") {
		t.Errorf("/health of the cut member = %d %s, want 503 with health false", code, body)
	}
	if v := scrape(t, addr).value(t, "cairn_raft_has_leader"); v != 0 {
		t.Errorf("cairn_raft_has_leader of the cut member = %v, want 0", v)
	}
	if code, _ := get(t, c.Servers[leader].MetricsAddr(), "/health"); code != http.StatusOK {
		t.Errorf("/health of the leader = %d while one follower is cut, want 200", code)
	}
	c.Net.Heal()
	waitFor(t, ctx, "the healed member is healthy again", func() bool {
		code, _ := get(t, addr, "/health")
		return code == http.StatusOK
	})
}
