// Package engine runs one node of a cairn cluster: a raft group member built
// on go.etcd.io/raft/v3, with its log in Pebble (package storage), its peers
// reached through a transport.Transport, and the application's state in a
// StateMachine.
//
// # Using it
//
//	e, err := engine.Start(engine.Config{NodeID: 1, DataDir: dir, StateMachine: sm})
//	<-e.Ready()                       // a leader is known and the node caught up
//	res, err := e.Propose(ctx, cmd)   // replicated, committed, applied; res is what sm.Apply returned
//	e.Stop()
//
// Membership changes (AddVoter, AddLearner, PromoteLearner, RemoveNode,
// ChangeMembership for joint consensus, TransferLeadership) and Status work
// on any member; followers forward proposals to the leader.
//
// # How a proposal flows
//
// Four goroutines share the work, each owning its state; they hand work to
// each other through queues that never block the sender:
//
//  1. Propose encodes the payload behind the node id and a sequence number,
//     registers a waiter, and hands the proposal to the raft loop.
//  2. The raft loop is the only goroutine that touches the raft.RawNode. It
//     ticks, steps peer messages, storage responses and proposals (a burst of
//     proposals becomes one MsgProp), and hands each Ready out. The node runs
//     with AsyncStorageWrites, so the Ready's local work arrives as messages:
//     MsgStorageAppend goes to the log writer, MsgStorageApply to the apply
//     loop, everything else to the transport, at once.
//  3. The log writer persists appends (entries, HardState, installed
//     snapshots) as one Pebble batch per drained queue — group commit — and
//     only then releases the responses raft attached to them: this node's
//     acknowledgement to the leader, or, on the leader, its own count toward
//     the commit quorum. That is the raft contract "persist before you
//     acknowledge", and with DiskFirst the batch is fsynced first.
//  4. The apply loop applies committed entries in order, in batches, to the
//     StateMachine, resolves the waiters of this node's proposals with the
//     results, applies configuration changes (to raft, on the raft loop, and
//     to the membership and transport), restores snapshots received from the
//     leader, and takes snapshots by policy; then it tells raft what it
//     applied.
//
// # Reads
//
// The engine does not read the state machine; it tells when a read of it
// may be served. ReadBarrier(ctx, policy) returns once a read of the local
// state machine satisfies the policy ([raft.read_consistency]):
//
//   - LinearizableRead (the default): raft's ReadIndex. The raft loop
//     batches reads into rounds: a read arriving when none is in flight
//     starts one at once; reads arriving meanwhile wait for the next, which
//     starts when the rounds in flight end, or alongside them once
//     read_batching.size_threshold reads wait or the oldest has waited
//     read_batching.time_threshold_ms. A follower gets the index from the
//     leader (MsgReadIndex) and serves once it applied it.
//   - LeaseRead: a leader that holds a lease serves at its commit index
//     with no message. The lease lasts lease_duration_ms from the start of
//     the quorum round that confirmed it, on the leader's monotonic clock;
//     its safety assumes bounded clock drift: over one lease, the leader's
//     clock runs slower than a voter's by less than (election_tick − 1) ×
//     tick_ms − lease_duration_ms. Without a lease, and always on a
//     follower, it is a LinearizableRead. See ReadPolicy for the exact
//     guarantee and what drops a lease.
//   - EventualConsistency: at once, from local state.
//
// ResolveReadPolicy applies the default and allow_client_override to the
// policy a client asked for; ReadStats counts reads and rounds.
//
// # Persistence strategies
//
// DiskFirst and MemFirst are documented on their constants. Status reports
// the durable index and the flush lag.
//
// # Events and Status
//
// A Reporter (Config.Reporter) receives the node's events: discrete, typed
// (EventType lists them with their fields), numbered in one sequence per
// node and timed. Term, role, leader and commit changes come from the raft
// loop (one EventCommitted per Ready that advances the commit index),
// EventApplied from the apply loop (one per batch), snapshots from the
// goroutines that create, install, send and receive them, slow fsyncs and
// the MemFirst flush lag crossing Config.FlushLagThreshold from the log
// writer and the flusher, connection changes from the transport
// (transport.Handler.PeerState), and the layers above add theirs through
// Engine.Report (the DB: watchers that fell behind or were canceled by
// compaction). Emitting never blocks: events wait for the reporter's
// goroutine in a bounded queue, and those that do not fit are counted and
// reported as one EventEventsDropped whose Count is exactly the gap in the
// sequence before it. With no Reporter, no event is built.
//
// Status is a plain struct: the node's role, term, leader, indexes,
// membership, the leader's view of each follower, read counters, and the
// health of each connection class to each peer as the transport reported
// it.
//
// # Snapshots and compaction
//
// After Snapshot.Threshold applied entries (or a membership change), the
// apply loop takes a point-in-time Snapshot of the state machine, which
// another goroutine writes to a checksummed file; the log is then compacted
// up to Snapshot.CatchUpMargin entries behind it. A follower that needs
// entries older than the log receives the file over the transport's Bulk
// class; a broken transfer resumes where it stopped.
//
// # Restart
//
// On Start the engine opens the data directory (refusing one that another
// process holds, or that belongs to another cluster or node), restores the
// state machine from the latest snapshot if the state machine's own
// AppliedIndex is older, and lets raft replay the committed log after the
// snapshot; entries the state machine already holds are not applied twice.
//
// # Stopping
//
// Stop fails waiting proposals with ErrStopped, lets the log writer and the
// apply loop finish their current batch, and closes transport and storage.
// A node removed from the cluster stops itself shortly after (Err returns
// ErrRemoved).
package engine
