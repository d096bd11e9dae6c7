package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"time"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/metrics"
)

// httpServer is the metrics listener: /metrics, /health, /ready and, with
// Options.Pprof, /debug/pprof/. It exists only when Options.MetricsAddr is
// set; then the node is measured (package metrics) from its start.
type httpServer struct {
	m   *metrics.Metrics
	lis net.Listener
	srv *http.Server
}

// httpShutdownTimeout bounds how long Shutdown waits for requests in
// progress on the metrics listener (a pprof profile may run for long)
// before it closes their connections.
const httpShutdownTimeout = time.Second

// initMetrics creates the metrics and instruments cfg with them, before the
// node starts; it does nothing when MetricsAddr is "".
func (s *Server) initMetrics(cfg *cairn.Config) {
	if s.opts.MetricsAddr == "" {
		return
	}
	s.http = &httpServer{m: metrics.New()}
	s.http.m.Instrument(&cfg.Engine)
}

// startHTTP binds the metrics listener and serves it, once the node runs.
func (s *Server) startHTTP() error {
	h := s.http
	if h == nil {
		return nil
	}
	lis, err := net.Listen("tcp", s.opts.MetricsAddr)
	if err != nil {
		return fmt.Errorf("server: listen for metrics on %s: %w", s.opts.MetricsAddr, err)
	}
	h.lis = lis
	h.m.Attach(s.db)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h.m.Handler())
	mux.HandleFunc("GET /health", s.serveHealth)
	mux.HandleFunc("GET /ready", s.serveReady)
	if s.opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index) // and the named profiles under it
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	h.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := h.srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener stopped", "err", err)
		}
	}()
	return nil
}

// stopHTTP stops the metrics listener and detaches the metrics from the
// node; it must run before the node closes.
func (s *Server) stopHTTP() {
	h := s.http
	if h == nil {
		return
	}
	if h.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		if err := h.srv.Shutdown(ctx); err != nil {
			h.srv.Close()
		}
		cancel()
	}
	h.m.Detach()
}

// MetricsAddr is the address the metrics listener is bound to, once
// started; "" if there is none.
func (s *Server) MetricsAddr() string {
	if s.http == nil || s.http.lis == nil {
		return ""
	}
	return s.http.lis.Addr().String()
}

// healthStatus is the body of /health, as etcd's: {"health":"true"}, or
// "false" and why.
type healthStatus struct {
	Health string `json:"health"`
	Reason string `json:"reason,omitempty"`
}

// serveHealth answers 200 when this member runs, knows a leader and the
// cluster has no active alarm (?exclude=NOSPACE, repeatable, ignores one
// type, as etcd's /health does); 503 otherwise, with the reason.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	h := healthStatus{Health: "true"}
	exclude := r.URL.Query()["exclude"]
	select {
	case <-s.donec:
		h = healthStatus{Health: "false", Reason: "STOPPED"}
	default:
		if leader, _, _ := s.db.Engine().Leader(); leader == 0 {
			h = healthStatus{Health: "false", Reason: "RAFT NO LEADER"}
			break
		}
		for _, a := range s.db.Alarms() {
			if name := a.GetAlarm().String(); !slices.Contains(exclude, name) {
				h = healthStatus{Health: "false", Reason: "ALARM " + name}
				break
			}
		}
	}
	code := http.StatusOK
	if h.Health != "true" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, h)
}

// serveReady answers 200 once the server is ready (Ready is closed) and
// until it stops; 503 otherwise.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	ready := false
	select {
	case <-s.donec:
	default:
		select {
		case <-s.readyc:
			ready = true
		default:
		}
	}
	if ready {
		writeJSON(w, http.StatusOK, map[string]string{"ready": "true"})
		return
	}
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"ready": "false"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away
}
