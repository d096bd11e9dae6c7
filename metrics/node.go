package metrics

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-db/cairn"
	"github.com/cairn-db/cairn/engine"
)

// nodeCollector reads a node's state once per scrape: Engine.Status (one
// trip through the raft loop), the watch hub's and the lessor's counters
// and the storage size.
type nodeCollector struct {
	mu struct {
		sync.RWMutex // held for reading by a scrape, for writing by attach
		db           *cairn.DB
	}

	term, isLeader, hasLeader           *prometheus.Desc
	commit, applied, durable, last      *prometheus.Desc
	first, snapshot                     *prometheus.Desc
	committedTotal, appliedTotal        *prometheus.Desc
	flushLag, dbSize, dbInUse, revision *prometheus.Desc
	watchers, unsynced, pending         *prometheus.Desc
	overflows, compacted, resyncs       *prometheus.Desc
	leases                              *prometheus.Desc
	reads, leaseLocal, leaseFallbacks   *prometheus.Desc
	rounds, leaseRemaining              *prometheus.Desc
	descs                               []*prometheus.Desc
}

func newNodeCollector() *nodeCollector {
	c := &nodeCollector{}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		desc := prometheus.NewDesc(name, help, labels, nil)
		c.descs = append(c.descs, desc)
		return desc
	}
	c.term = d("cairn_raft_term", "The current raft term.")
	c.isLeader = d("cairn_raft_is_leader", "1 if this node is the leader, 0 otherwise.")
	c.hasLeader = d("cairn_raft_has_leader", "1 if this node knows a leader, 0 otherwise.")
	c.commit = d("cairn_raft_commit_index", "The highest log index known committed.")
	c.applied = d("cairn_raft_applied_index", "The highest log index applied to the state machine.")
	c.durable = d("cairn_raft_durable_index", "The highest log index on stable storage on this node.")
	c.last = d("cairn_raft_last_index", "The highest index in the local log.")
	c.first = d("cairn_raft_first_index", "The oldest index still in the local log.")
	c.snapshot = d("cairn_raft_snapshot_index", "The index of the latest snapshot.")
	c.committedTotal = d("cairn_raft_proposals_committed_total", "The commit index as a counter: its rate is entries committed per second.")
	c.appliedTotal = d("cairn_raft_proposals_applied_total", "The applied index as a counter: its rate is entries applied per second.")
	c.flushLag = d("cairn_storage_flush_lag_entries", "Entries written but not yet durable: last index minus durable index (0 under DiskFirst).")
	c.dbSize = d("cairn_storage_db_size_bytes", "Bytes the node's storage holds on disk (raft log and state machine, live or awaiting compaction).")
	c.dbInUse = d("cairn_storage_db_size_in_use_bytes", "Estimate of the live part of cairn_storage_db_size_bytes.")
	c.revision = d("cairn_mvcc_revision", "The key-value store's current revision.")
	c.watchers = d("cairn_watch_watchers", "Open watchers.")
	c.unsynced = d("cairn_watch_unsynced_watchers", "Watchers off the live path, catching up from history (slow or resuming).")
	c.pending = d("cairn_watch_pending_events", "Events catching-up watchers hold outside their buffers.")
	c.overflows = d("cairn_watch_overflows_total", "Times a watcher's buffer was full and it was moved off the live path.")
	c.compacted = d("cairn_watch_compacted_total", "Watchers ended because their start revision was compacted.")
	c.resyncs = d("cairn_watch_resyncs_total", "Times the synced watchers were sent back to history because revisions were skipped.")
	c.leases = d("cairn_leases", "Leases granted and not yet revoked or expired.")
	c.reads = d("cairn_reads_total", "Reads served, by read policy.", "policy")
	c.leaseLocal = d("cairn_read_lease_local_total", "Lease reads this node served from its lease, with no message.")
	c.leaseFallbacks = d("cairn_read_lease_fallbacks_total", "Lease reads that ran a ReadIndex round because this node held no valid lease.")
	c.rounds = d("cairn_read_index_rounds_total", "ReadIndex rounds started, by what started them.", "reason")
	c.leaseRemaining = d("cairn_read_lease_remaining_seconds", "What is left of this node's read lease; 0 if it holds none.")
	return c
}

// attach sets the node scrapes read (nil: none), once no scrape is reading
// the previous one.
func (c *nodeCollector) attach(db *cairn.DB) {
	c.mu.Lock()
	c.mu.db = db
	c.mu.Unlock()
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	db := c.mu.db
	if db == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	bool01 := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}

	e := db.Engine()
	st := e.Status()
	gauge(c.term, float64(st.Term))
	gauge(c.isLeader, bool01(st.Role == engine.Leader))
	gauge(c.hasLeader, bool01(st.Leader != 0))
	gauge(c.commit, float64(st.Commit))
	gauge(c.applied, float64(st.Applied))
	gauge(c.durable, float64(st.Durable))
	gauge(c.last, float64(st.LastIndex))
	gauge(c.first, float64(st.FirstIndex))
	gauge(c.snapshot, float64(st.SnapshotIndex))
	counter(c.committedTotal, st.Commit)
	counter(c.appliedTotal, st.Applied)
	gauge(c.flushLag, float64(st.FlushLag()))

	r := st.Reads
	counter(c.reads, r.Linearizable, "linearizable")
	counter(c.reads, r.Lease, "lease")
	counter(c.reads, r.Eventual, "eventual")
	counter(c.leaseLocal, r.LeaseLocal)
	counter(c.leaseFallbacks, r.LeaseFallbacks)
	counter(c.rounds, r.RoundsIdle, "idle")
	counter(c.rounds, r.RoundsSize, "size")
	counter(c.rounds, r.RoundsTime, "time")
	counter(c.rounds, r.RoundsRenew, "renew")
	counter(c.rounds, r.RoundsRetry, "retry")
	gauge(c.leaseRemaining, r.LeaseRemaining.Seconds())

	ws := db.WatchStats()
	gauge(c.watchers, float64(ws.Watchers))
	gauge(c.unsynced, float64(ws.Unsynced))
	gauge(c.pending, float64(ws.CatchUpEvents))
	counter(c.overflows, ws.Overflows)
	counter(c.compacted, ws.Compacted)
	counter(c.resyncs, ws.Resyncs)

	gauge(c.revision, float64(db.Revision()))
	if ls, err := db.Leases(context.Background()); err == nil {
		gauge(c.leases, float64(len(ls.GetLeases())))
	}
	if total, inUse, ok := size(db); ok {
		gauge(c.dbSize, float64(total))
		gauge(c.dbInUse, float64(inUse))
	}
}

// size reads the storage size unless the node has stopped: a node that
// failed closes its storage on its own, before the server detaches the
// metrics, and Pebble panics on a closed instance. The recover covers a
// node that fails between the check and the read, so that a scrape, which
// runs its collectors on goroutines of its own, never takes the process
// down.
func size(db *cairn.DB) (total, inUse int64, ok bool) {
	select {
	case <-db.Engine().Done():
		return 0, 0, false
	default:
	}
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	total, inUse = db.Size()
	return total, inUse, true
}
