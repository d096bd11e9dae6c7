package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/internal/servercluster"
)

// TestServeMetrics: cairn serve --metrics-addr serves /metrics, /health and
// /ready there, logs the address, and closes the listener when it stops.
func TestServeMetrics(t *testing.T) {
	addr := servercluster.FreeAddr(t)
	r := startServe(t, "--metrics-addr", addr)
	rec := r.logs.waitFor(t, "serving", r.done)
	if rec["metrics"] != addr {
		t.Errorf("serving record %v: want metrics %s", rec, addr)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := hc.Get("http://" + addr + path)
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
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{"\ncairn_raft_is_leader 1\n", "\ncairn_storage_fsync_duration_seconds_count ", "\ngrpc_server_handled_total{"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %q", strings.TrimSpace(want))
		}
	}
	for _, path := range []string{"/health", "/ready"} {
		if code, body := get(path); code != http.StatusOK {
			t.Errorf("%s = %d %s, want 200", path, code, body)
		}
	}
	if code, _ := get("/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ = %d without [metrics] pprof, want 404", code)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("serve: %v; logs:\n%s", err, r.logs)
	}
	if _, err := hc.Get("http://" + addr + "/metrics"); err == nil {
		t.Error("the metrics listener still answers after serve stopped")
	}
}

// TestServeMetricsOff: without --metrics-addr nothing listens for metrics.
func TestServeMetricsOff(t *testing.T) {
	r := startServe(t)
	if rec := r.logs.waitFor(t, "serving", r.done); rec["metrics"] != nil {
		t.Errorf("serving record %v: metrics without --metrics-addr", rec)
	}
}
