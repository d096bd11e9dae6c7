package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/engine"
	"github.com/cairn-db/cairn/metrics"
	"github.com/cairn-db/cairn/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs a one-node DB measured by m.
func start(t *testing.T, m *metrics.Metrics, tune func(*engine.Config)) *cairn.DB {
	t.Helper()
	cfg := engine.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ListenPeer = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if tune != nil {
		tune(&cfg)
	}
	m.Instrument(&cfg)
	db, err := cairn.Start(cairn.Config{Engine: cfg})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-db.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready after 10s")
	}
	return db
}

// gather returns the value of each sample, keyed by name and labels
// ("name" or "name{k=v,...}"); a histogram's is its count.
func gather(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, s := range f.GetMetric() {
			key := f.GetName()
			if len(s.GetLabel()) > 0 {
				var ls []string
				for _, l := range s.GetLabel() {
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
				key += "{" + strings.Join(ls, ",") + "}"
			}
			out[key] = value(s)
		}
	}
	return out
}

func value(s *dto.Metric) float64 {
	switch {
	case s.Gauge != nil:
		return s.GetGauge().GetValue()
	case s.Counter != nil:
		return s.GetCounter().GetValue()
	case s.Histogram != nil:
		return float64(s.GetHistogram().GetSampleCount())
	}
	return s.GetUntyped().GetValue()
}

type recorder struct {
	mu     sync.Mutex
	events []engine.Event
}

func (r *recorder) Report(e engine.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// TestNodeMetrics: an attached node's state is read at scrape time, the
// pushed metrics move, and a reporter and an fsync observer already
// configured still get everything.
func TestNodeMetrics(t *testing.T) {
	m := metrics.New()
	rec := &recorder{}
	var fsyncs atomic.Int64
	db := start(t, m, func(c *engine.Config) {
		c.Reporter = rec
		c.FsyncObserver = func(time.Duration) { fsyncs.Add(1) }
	})
	defer db.Close()

	before := gather(t, m)
	if _, ok := before["cairn_raft_applied_index"]; ok {
		t.Error("node metrics reported before Attach")
	}
	m.Attach(db)
	ctx := context.Background()
	for range 3 {
		if _, err := db.Put(ctx, "k", "v"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Grant(ctx, 60); err != nil {
		t.Fatal(err)
	}
	w, err := db.Watch(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	// Events reach the metrics through the engine's reporter goroutine.
	deadline := time.Now().Add(5 * time.Second)
	for gather(t, m)["cairn_raft_leader_changes_seen_total"] == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := gather(t, m)
	for name, want := range map[string]float64{
		"cairn_raft_is_leader":                       1,
		"cairn_raft_has_leader":                      1,
		"cairn_raft_leader_changes_seen_total":       1,
		"cairn_leases":                               1,
		"cairn_watch_watchers":                       1,
		"cairn_watch_unsynced_watchers":              0,
		"cairn_storage_flush_lag_entries":            0,
		"cairn_reads_total{policy=linearizable}":     1,
		"cairn_read_index_rounds_total{reason=size}": 0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if v := got["cairn_mvcc_revision"]; v != float64(db.Revision()) {
		t.Errorf("cairn_mvcc_revision = %v, want %d", v, db.Revision())
	}
	st := db.Engine().Status()
	if got["cairn_raft_applied_index"] < float64(st.Applied)-1 || got["cairn_raft_applied_index"] == 0 {
		t.Errorf("cairn_raft_applied_index = %v, status says %d", got["cairn_raft_applied_index"], st.Applied)
	}
	if got["cairn_raft_proposals_applied_total"] != got["cairn_raft_applied_index"] {
		t.Errorf("cairn_raft_proposals_applied_total = %v, want the applied index %v",
			got["cairn_raft_proposals_applied_total"], got["cairn_raft_applied_index"])
	}
	if got["cairn_storage_fsync_duration_seconds"] < 3 {
		t.Errorf("cairn_storage_fsync_duration_seconds has %v samples after 3 puts under DiskFirst, want ≥ 3", got["cairn_storage_fsync_duration_seconds"])
	}
	if got["cairn_storage_db_size_bytes"] <= 0 || got["cairn_storage_db_size_in_use_bytes"] > got["cairn_storage_db_size_bytes"] {
		t.Errorf("db size %v, in use %v", got["cairn_storage_db_size_bytes"], got["cairn_storage_db_size_in_use_bytes"])
	}
	if n := fsyncs.Load(); n < 3 {
		t.Errorf("the fsync observer configured before Instrument was called %d times, want ≥ 3", n)
	}
	deadline = time.Now().Add(5 * time.Second)
	for rec.count() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if rec.count() == 0 {
		t.Error("the reporter configured before Instrument got no event")
	}

	// Handler serves the text format.
	rr := httptest.NewRecorder()
	m.Handler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	if rr.Code != 200 || !strings.Contains(rr.Body.String(), "\ncairn_raft_applied_index ") {
		t.Errorf("Handler: %d, body without cairn_raft_applied_index", rr.Code)
	}

	m.Detach()
	if _, ok := gather(t, m)["cairn_raft_term"]; ok {
		t.Error("node metrics reported after Detach")
	}
	if _, ok := gather(t, m)["cairn_storage_fsync_duration_seconds"]; !ok {
		t.Error("pushed metrics gone after Detach")
	}
}

// TestScrapeOfStoppedNode: a node that stops while attached (as one that
// fails does, before its server detaches the metrics) is scraped without
// reading its closed storage.
func TestScrapeOfStoppedNode(t *testing.T) {
	m := metrics.New()
	db := start(t, m, nil)
	m.Attach(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	got := gather(t, m)
	if _, ok := got["cairn_raft_applied_index"]; !ok {
		t.Error("no status of a stopped node")
	}
	if _, ok := got["cairn_storage_db_size_bytes"]; ok {
		t.Error("the size of a stopped node's storage was read")
	}
	m.Detach()
}

// TestRegistriesAreSeparate: two Metrics in one process do not collide.
func TestRegistriesAreSeparate(t *testing.T) {
	a, b := metrics.New(), metrics.New()
	if a.Registry() == b.Registry() {
		t.Fatal("two Metrics share a registry")
	}
	gather(t, a)
	gather(t, b)
}

// TestMemFirstFlushes: under MemFirst the flusher's syncs are timed, and
// the flush lag is read.
func TestMemFirstFlushes(t *testing.T) {
	m := metrics.New()
	db := start(t, m, func(c *engine.Config) {
		c.Persistence = engine.PersistenceConfig{Strategy: engine.MemFirst, FlushPolicy: engine.FlushPolicy{Immediate: true}}
	})
	defer db.Close()
	m.Attach(db)
	defer m.Detach()
	before := gather(t, m)["cairn_storage_fsync_duration_seconds"]
	for range 3 {
		if _, err := db.Put(context.Background(), "k", "v"); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for gather(t, m)["cairn_storage_fsync_duration_seconds"] == before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := gather(t, m)
	if got["cairn_storage_fsync_duration_seconds"] == before {
		t.Error("no flush timed under MemFirst")
	}
	if _, ok := got["cairn_storage_flush_lag_entries"]; !ok {
		t.Error("no cairn_storage_flush_lag_entries")
	}
}

// TestEventCounters: the reporter Instrument installs counts the events it
// is given, by their labels, and passes every event on.
func TestEventCounters(t *testing.T) {
	m := metrics.New()
	next := &recorder{}
	cfg := engine.Config{Reporter: next}
	m.Instrument(&cfg)
	for _, e := range []engine.Event{
		{Type: engine.EventSlowFsync, Duration: time.Second},
		{Type: engine.EventSlowFsync, Duration: 2 * time.Second},
		{Type: engine.EventReadIndexTimedOut, Count: 3},
		{Type: engine.EventPeerUnreachable, Peer: 2, Class: transport.Data},
		{Type: engine.EventPeerUnreachable, Peer: 3, Class: transport.Data},
		{Type: engine.EventPeerUnreachable, Peer: 3, Class: transport.Bulk},
		{Type: engine.EventSnapshotSent, Bytes: 100},
		{Type: engine.EventSnapshotReceived, Bytes: 40},
	} {
		cfg.Reporter.Report(e)
	}
	got := gather(t, m)
	want := map[string]float64{
		"cairn_storage_slow_fsyncs_total":                                 2,
		"cairn_read_index_timeouts_total":                                 3,
		`cairn_peer_unreachable_total{class=data}`:                        2,
		`cairn_peer_unreachable_total{class=bulk}`:                        1,
		`cairn_raft_snapshot_transferred_bytes_total{direction=sent}`:     100,
		`cairn_raft_snapshot_transferred_bytes_total{direction=received}`: 40,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if n := next.count(); n != 8 {
		t.Errorf("the next reporter got %d events, want 8", n)
	}
}
