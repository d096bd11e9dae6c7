package metrics

import (
	"net/http"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/engine"
)

// Metrics are one node's metrics on a registry of their own. Its methods
// may be called concurrently.
type Metrics struct {
	reg  *prometheus.Registry
	grpc *grpcprom.ServerMetrics
	node *nodeCollector

	fsync            prometheus.Histogram
	leaderChanges    prometheus.Counter
	proposalsDropped prometheus.Counter
	eventsDropped    prometheus.Counter
	snapshots        *prometheus.HistogramVec // by kind: created, installed
	slowFsyncs       prometheus.Counter
	readTimeouts     prometheus.Counter
	peerDown         *prometheus.CounterVec // by class: control, data, bulk
	snapshotBytes    *prometheus.CounterVec // by direction: sent, received
}

// New returns the metrics of a node to be instrumented (Instrument) and
// attached (Attach). One Metrics measures one node.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets([]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}),
		)),
		node: newNodeCollector(),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cairn_storage_fsync_duration_seconds",
			Help: "Duration of synced writes of the raft log (the write and its fsync).",
			// etcd's wal_fsync_duration_seconds buckets: 1ms to 8s.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_raft_leader_changes_seen_total",
			Help: "Number of leaders this node has seen elected.",
		}),
		proposalsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_raft_proposals_dropped_total",
			Help: "Number of proposals raft refused (no leader, leadership transfer, uncommitted log full).",
		}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_raft_events_dropped_total",
			Help: "Number of engine events a slow reporter missed; the counters fed by events miss them too.",
		}),
		snapshots: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cairn_raft_snapshot_duration_seconds",
			Help:    "Duration of snapshots created on this node (kind=created) or installed from the leader (kind=installed).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}, []string{"kind"}),
		slowFsyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_storage_slow_fsyncs_total",
			Help: "Synced log writes slower than storage.slow_fsync_ms (EventSlowFsync).",
		}),
		readTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_read_index_timeouts_total",
			Help: "Reads whose ReadIndex round got no answer within an election timeout and was retried.",
		}),
		peerDown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_peer_unreachable_total",
			Help: "Times a connection class to a peer went down (EventPeerUnreachable).",
		}, []string{"class"}),
		snapshotBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_raft_snapshot_transferred_bytes_total",
			Help: "Snapshot bytes sent to followers or received from the leader.",
		}, []string{"direction"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.grpc, m.node, m.fsync, m.leaderChanges, m.proposalsDropped, m.eventsDropped, m.snapshots,
		m.slowFsyncs, m.readTimeouts, m.peerDown, m.snapshotBytes,
	)
	return m
}

// Registry is the registry the metrics are on, for a program that adds its
// own or serves them itself.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:          m.reg, // promhttp's own metrics, on this registry
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
}

// Instrument sets cfg's FsyncObserver and Reporter to feed the metrics,
// keeping an observer or reporter already set: it is called after the
// metrics'. Call it before the node starts.
func (m *Metrics) Instrument(cfg *engine.Config) {
	if next := cfg.FsyncObserver; next != nil {
		cfg.FsyncObserver = func(d time.Duration) { m.observeFsync(d); next(d) }
	} else {
		cfg.FsyncObserver = m.observeFsync
	}
	cfg.Reporter = reporter{m: m, next: cfg.Reporter}
}

func (m *Metrics) observeFsync(d time.Duration) { m.fsync.Observe(d.Seconds()) }

// Attach makes scrapes read db: its status, watches, leases and size. Until
// then they report only the metrics that are pushed.
func (m *Metrics) Attach(db *cairn.DB) { m.node.attach(db) }

// Detach stops scrapes from reading the node, waiting for one in progress.
// Call it before the node is closed: some of its state must not be read
// after that.
func (m *Metrics) Detach() { m.node.attach(nil) }

// UnaryServerInterceptor counts and times a gRPC server's unary calls. Put
// it first in the chain so that it sees the status code the client gets.
func (m *Metrics) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return m.grpc.UnaryServerInterceptor()
}

// StreamServerInterceptor counts and times a gRPC server's streams and their
// messages. Put it first in the chain.
func (m *Metrics) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return m.grpc.StreamServerInterceptor()
}

// InitializeGRPC creates the gRPC metrics of every method registered on s
// at zero, so that they exist before the first call. Call it after the
// services are registered.
func (m *Metrics) InitializeGRPC(s *grpc.Server) { m.grpc.InitializeMetrics(s) }

// reporter turns engine events into metrics, then passes them on.
type reporter struct {
	m    *Metrics
	next engine.Reporter
}

func (r reporter) Report(e engine.Event) {
	switch e.Type {
	case engine.EventLeaderChanged:
		if e.Leader != 0 {
			r.m.leaderChanges.Inc()
		}
	case engine.EventProposalDropped:
		r.m.proposalsDropped.Add(float64(e.Count))
	case engine.EventEventsDropped:
		r.m.eventsDropped.Add(float64(e.Count))
	case engine.EventSnapshotCreated:
		r.m.snapshots.WithLabelValues("created").Observe(e.Duration.Seconds())
	case engine.EventSnapshotInstalled:
		r.m.snapshots.WithLabelValues("installed").Observe(e.Duration.Seconds())
	case engine.EventSlowFsync:
		r.m.slowFsyncs.Inc()
	case engine.EventReadIndexTimedOut:
		r.m.readTimeouts.Add(float64(e.Count))
	case engine.EventPeerUnreachable:
		r.m.peerDown.WithLabelValues(e.Class.String()).Inc()
	case engine.EventSnapshotSent:
		r.m.snapshotBytes.WithLabelValues("sent").Add(float64(e.Bytes))
	case engine.EventSnapshotReceived:
		r.m.snapshotBytes.WithLabelValues("received").Add(float64(e.Bytes))
	}
	if r.next != nil {
		r.next.Report(e)
	}
}
