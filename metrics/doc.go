// Package metrics measures a cairn node for Prometheus.
//
// A Metrics owns its own prometheus.Registry (never the global one), so any
// number of nodes run in one process without their metrics colliding. It is
// wired to one node in three steps:
//
//  1. New creates the registry and the metrics that are pushed as things
//     happen: the fsync histogram, the counters fed by engine events and the
//     gRPC server metrics.
//  2. Instrument, before the node starts, sets the engine's FsyncObserver
//     and Reporter (keeping those already set: both are called).
//  3. Attach, once the node runs, lets scrapes read it; Detach, before the
//     node closes, stops them (it waits for a scrape in progress).
//
// Handler serves the registry in the Prometheus text format; the server's
// HTTP listener mounts it at /metrics. UnaryServerInterceptor and
// StreamServerInterceptor measure a gRPC server.
//
// # What is measured, and how
//
// Most values are read once per scrape, from Engine.Status, DB.WatchStats,
// DB.Size and the lessor, so nothing is added to the hot paths:
//
//	cairn_raft_term                          gauge    current term
//	cairn_raft_is_leader                     gauge    1 if this node leads
//	cairn_raft_has_leader                    gauge    1 if this node knows a leader
//	cairn_raft_commit_index                  gauge    highest index known committed
//	cairn_raft_applied_index                 gauge    highest index applied to the state machine
//	cairn_raft_durable_index                 gauge    highest index on stable storage here
//	cairn_raft_last_index                    gauge    highest index in the local log
//	cairn_raft_first_index                   gauge    oldest index still in the log
//	cairn_raft_snapshot_index                gauge    latest snapshot's index
//	cairn_raft_proposals_committed_total     counter  the commit index, as a counter (etcd's proposals_committed_total)
//	cairn_raft_proposals_applied_total       counter  the applied index, as a counter (etcd's proposals_applied_total)
//	cairn_storage_flush_lag_entries          gauge    last_index − durable_index (0 under DiskFirst)
//	cairn_storage_db_size_bytes              gauge    bytes the node's Pebble instance holds on disk
//	cairn_storage_db_size_in_use_bytes       gauge    estimate of the live part of it
//	cairn_mvcc_revision                      gauge    the store's current revision
//	cairn_watch_watchers                     gauge    open watchers
//	cairn_watch_unsynced_watchers            gauge    watchers off the live path, catching up from history
//	cairn_watch_pending_events               gauge    events catching-up watchers hold outside their buffers
//	cairn_watch_overflows_total              counter  watchers moved off the live path (buffer full)
//	cairn_watch_compacted_total              counter  watchers ended by compaction
//	cairn_watch_resyncs_total                counter  times synced watchers were sent back to history
//	cairn_leases                             gauge    leases
//	cairn_reads_total{policy}                counter  reads served, by policy (linearizable, lease, eventual)
//	cairn_read_lease_local_total             counter  lease reads served from this node's lease, with no message
//	cairn_read_lease_fallbacks_total         counter  lease reads that ran a ReadIndex round instead
//	cairn_read_index_rounds_total{reason}    counter  ReadIndex rounds started, by reason (idle, size, time, renew, retry)
//	cairn_read_lease_remaining_seconds       gauge    what is left of this node's read lease
//
// These are pushed as they happen, at no cost on a node without metrics:
//
//	cairn_storage_fsync_duration_seconds     histogram  synced log writes (write + fsync), from engine.Config.FsyncObserver
//	cairn_raft_leader_changes_seen_total     counter    leaders this node has seen elected (EventLeaderChanged to a leader)
//	cairn_raft_proposals_dropped_total       counter    proposals raft refused (EventProposalDropped)
//	cairn_raft_snapshot_duration_seconds{kind} histogram snapshots created here or installed from the leader
//	cairn_storage_slow_fsyncs_total          counter    synced log writes slower than storage.slow_fsync_ms (EventSlowFsync)
//	cairn_read_index_timeouts_total          counter    reads whose ReadIndex round was retried after an election timeout
//	cairn_peer_unreachable_total{class}      counter    times a connection class to a peer went down
//	cairn_raft_snapshot_transferred_bytes_total{direction} counter snapshot bytes sent or received
//	cairn_raft_events_dropped_total          counter    engine events a slow Reporter missed; the event counters above miss them too
//
// The gRPC server metrics are those of
// github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus, with
// their conventional names (the ones etcd exports, so etcd's dashboards
// read them): grpc_server_started_total, grpc_server_handled_total (by
// grpc_type, grpc_service, grpc_method and grpc_code),
// grpc_server_msg_received_total, grpc_server_msg_sent_total and the
// grpc_server_handling_seconds histogram. The Go runtime's (go_*) and the
// process's (process_*) standard metrics are registered too.
package metrics
