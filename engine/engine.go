package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-db/cairn/storage"
	"github.com/cairn-db/cairn/transport"
	"github.com/cairn-db/cairn/transport/grpcnet"
)

// Errors callers test for.
var (
	// ErrStopped: the engine stopped. A proposal in flight when it stopped
	// may or may not have committed.
	ErrStopped = errors.New("engine: stopped; an in-flight proposal may or may not have committed")
	// ErrProposalTimeout: the caller's context ended while waiting for the
	// proposal to apply. The proposal may still commit.
	ErrProposalTimeout = errors.New("engine: timed out waiting for the proposal to apply; it may still commit")
	// ErrProposalDropped: raft refused the proposal (no leader known, leader
	// transfer in progress, or too much uncommitted data). It was not
	// committed and may be retried.
	ErrProposalDropped = errors.New("engine: proposal dropped (no leader, leadership transfer, or uncommitted limit); it was not committed")
	// ErrTooLarge: the proposal exceeds raft.max_proposal_bytes.
	ErrTooLarge = errors.New("engine: proposal too large")
	// ErrRemoved: this node was removed from the cluster.
	ErrRemoved = errors.New("engine: this node was removed from the cluster")
	// ErrLogLost: under DiskFirst, the log lacks entries this node had
	// acknowledged as durable; the disk lost synced writes.
	ErrLogLost = errors.New("engine: log lost entries that were acknowledged as durable")
	// ErrDiverged: this node applied committed entries that the cluster's
	// leader no longer has; its data must be rebuilt.
	ErrDiverged = errors.New("engine: this node's committed history diverged from the cluster's")
)

// Role is a node's part in the raft group.
type Role int

const (
	Follower Role = iota
	Candidate
	Leader
	PreCandidate
)

func (r Role) String() string {
	switch r {
	case Follower:
		return "follower"
	case Candidate:
		return "candidate"
	case Leader:
		return "leader"
	case PreCandidate:
		return "pre-candidate"
	}
	return "unknown"
}

func roleOf(s raft.StateType) Role {
	switch s {
	case raft.StateCandidate:
		return Candidate
	case raft.StateLeader:
		return Leader
	case raft.StatePreCandidate:
		return PreCandidate
	}
	return Follower
}

// Engine is one raft node: its log, its state machine and its link to the
// cluster. Create it with Start; it runs until Stop.
type Engine struct {
	cfg    Config
	id     uint64
	log    *slog.Logger
	store  *storage.Store
	tr     transport.Transport
	sm     StateMachine
	ev     *events
	rn     *raft.RawNode // owned by the raft loop goroutine after Start
	flush  *flusher
	leader leaderWatch

	inbox   *queue[inboxItem]        // to the raft loop: peer messages, storage responses, reports
	propc   chan []*proposal         // to the raft loop: proposals
	reqc    chan func(*raft.RawNode) // to the raft loop: work that needs the RawNode
	readc   chan *readReq            // to the raft loop: linearizable reads
	appendq *queue[*raftpb.Message]  // to the log writer
	applyq  *queue[applyTask]        // to the apply loop

	waiters waiters
	seq     atomic.Uint64 // proposal sequence numbers
	members membership    // written by the apply loop, read under its lock
	confMu  sync.Mutex    // one ChangeMembership at a time
	as      applyState    // owned by the apply loop
	applied atomic.Uint64
	durable atomic.Uint64
	commit  atomic.Uint64
	conns   connStates // the transport's reports of its connections

	// Owned by the raft loop: MemFirst recovery after a crash.
	recovering      bool // abstain from elections until a leader is heard from
	recoverTicks    int  // ticks spent recovering
	lostTailTicks   int  // ticks before asking again for a leader change
	silentTicks     int  // ticks left ignoring the leader (two-voter repair)
	lostCommitTicks int
	raftLast        uint64 // raft's last log index as of the latest Ready
	silentLeader    uint64
	repairTurn      int // rotates the voters asked to take over leadership
	readyAskTicks   int // ticks before asking again for the leader's commit index
	reads           readRounds
	lease           leaseState // see lease_read.go

	appliedWait appliedWaiters

	readyOnce sync.Once
	readyc    chan struct{}
	stopOnce  sync.Once
	stopc     chan struct{}
	donec     chan struct{}
	wg        sync.WaitGroup
	errMu     sync.Mutex
	err       error // why the engine stopped on its own
}

// Start opens the data directory, restores the state machine, joins the
// transport and starts the node's goroutines. It returns once the node runs;
// Ready tells when it has caught up with its cluster.
func Start(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:     cfg,
		id:      cfg.NodeID,
		log:     cfg.Logger.With("node", cfg.NodeID),
		sm:      cfg.StateMachine,
		inbox:   newQueue[inboxItem](),
		propc:   make(chan []*proposal, 256),
		reqc:    make(chan func(*raft.RawNode)),
		readc:   make(chan *readReq, 1024),
		appendq: newQueue[*raftpb.Message](),
		applyq:  newQueue[applyTask](),
		readyc:  make(chan struct{}),
		stopc:   make(chan struct{}),
		donec:   make(chan struct{}),
	}
	e.waiters.m = map[uint64]chan result{}
	e.seq.Store(uint64(time.Now().UnixNano()))
	e.leader.init()
	// Before the transport starts: it reports connection states at once.
	e.ev = newEvents(e.id, cfg.Reporter)
	if err := e.open(); err != nil {
		e.ev.stop()
		return nil, err
	}
	e.initReads()
	e.flush = newFlusher(e)
	e.wg.Add(3)
	go e.runRaft()
	go e.runAppend()
	go e.runApply()
	if e.flush != nil {
		e.wg.Add(1)
		go e.flush.run()
	}
	e.log.Info("engine started", "cluster", cfg.ClusterName, "peer_addr", e.tr.Addr(),
		"strategy", cfg.Persistence.Strategy, "applied", e.applied.Load())
	return e, nil
}

// open prepares storage, the state machine, the raft node and the transport.
func (e *Engine) open() (err error) {
	cfg := &e.cfg
	storeOpts := cfg.Storage
	storeOpts.Logger = e.log
	e.store, err = storage.Open(cfg.DataDir, storeOpts)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			e.store.Close()
		}
	}()
	if err := e.store.CheckIdentity(storage.Identity{ClusterName: cfg.ClusterName, ClusterID: cfg.ClusterID(), NodeID: e.id}); err != nil {
		return err
	}
	bootstrap := e.store.IsEmpty() && !cfg.Join
	e.members = newMembership()
	if err := e.restoreStateMachine(); err != nil {
		return err
	}
	hs := e.store.HardState()
	e.commit.Store(hs.GetCommit())
	// A MemFirst node that crashed may lack entries it acknowledged; until
	// it hears from a leader its vote could elect one that lacks them too.
	e.recovering = cfg.Persistence.Strategy == MemFirst && !e.store.CleanStart() && !e.store.IsEmpty()
	e.durable.Store(must(e.store.LastIndex()))

	if cfg.NewTransport != nil {
		e.tr, err = cfg.NewTransport(e.store)
	} else {
		e.tr, err = grpcnet.New(grpcnet.Options{
			NodeID: e.id, ClusterID: cfg.ClusterID(), ListenAddr: cfg.ListenPeer, Listener: cfg.PeerListener,
			Network: cfg.Network, Compression: cfg.Compression, Snapshots: e.store, Logger: cfg.Logger,
		})
	}
	if err != nil {
		if cfg.PeerListener != nil {
			cfg.PeerListener.Close()
		}
		return fmt.Errorf("engine: start transport: %w", err)
	}
	defer func() {
		if err != nil {
			e.tr.Close()
		}
	}()

	snapIndex := e.store.Status().SnapshotIndex
	rc := &raft.Config{
		ID:                        e.id,
		ElectionTick:              cfg.Raft.ElectionTick,
		HeartbeatTick:             cfg.Raft.HeartbeatTick,
		Storage:                   e.store,
		Applied:                   snapIndex,
		AsyncStorageWrites:        true,
		MaxSizePerMsg:             cfg.Raft.MaxSizePerMsg,
		MaxCommittedSizePerReady:  cfg.Raft.MaxSizePerMsg * 4,
		MaxUncommittedEntriesSize: cfg.Raft.MaxUncommittedBytes,
		MaxInflightMsgs:           cfg.Raft.MaxInflightMsgs,
		CheckQuorum:               !cfg.Raft.DisableCheckQuorum,
		PreVote:                   !cfg.Raft.DisablePreVote,
		StepDownOnRemoval:         true,
		Logger:                    raftLogger{e.log},
	}
	if e.rn, err = raft.NewRawNode(rc); err != nil {
		return fmt.Errorf("engine: start raft: %w", err)
	}
	// Peers known before the log is replayed: the configured ones, then the
	// latest snapshot's. Replaying the log's membership changes refines them.
	initial := cfg.InitialCluster
	if len(initial) == 0 {
		// A cluster of this node alone, at the address it really listens on
		// (ListenPeer may name port 0).
		initial = []Peer{{ID: e.id, Addr: e.tr.Addr()}}
	}
	for _, p := range initial {
		if p.ID != e.id {
			e.tr.AddPeer(p.ID, p.Addr)
		}
	}
	for id, addr := range e.members.addrs {
		if id != e.id {
			e.tr.AddPeer(id, addr)
		}
	}
	if bootstrap {
		peers := make([]raft.Peer, 0, len(initial))
		for _, p := range initial {
			peers = append(peers, raft.Peer{ID: p.ID, Context: encodeConfContext(confContext{Addrs: map[uint64]string{p.ID: p.Addr}})})
		}
		if err := e.rn.Bootstrap(peers); err != nil {
			return fmt.Errorf("engine: bootstrap: %w", err)
		}
	}
	if err := e.tr.Start(handler{e}); err != nil {
		return fmt.Errorf("engine: start transport: %w", err)
	}
	return nil
}

// Ready is closed once the node knows a leader and has applied every entry
// the leader had committed when this node asked it (a read index).
func (e *Engine) Ready() <-chan struct{} { return e.readyc }

// Done is closed once the engine has stopped, by Stop or on its own (Err
// says why).
func (e *Engine) Done() <-chan struct{} { return e.donec }

// Err returns why the engine stopped on its own (a fatal storage or state
// machine error, or ErrRemoved), or nil.
func (e *Engine) Err() error {
	e.errMu.Lock()
	defer e.errMu.Unlock()
	return e.err
}

// Leader returns the leader this node knows of (0 if none), its term, and a
// channel closed at the next change of either.
func (e *Engine) Leader() (leader, term uint64, changed <-chan struct{}) {
	return e.leader.get()
}

// ID is this node's id.
func (e *Engine) ID() uint64 { return e.id }

// PeerAddr is the address peers reach this node at.
func (e *Engine) PeerAddr() string { return e.tr.Addr() }

// fail stops the engine because of err. It may be called from any of the
// engine's goroutines.
func (e *Engine) fail(err error) {
	if e.stopping() {
		return // an error caused by the shutdown itself
	}
	e.errMu.Lock()
	if e.err == nil {
		e.err = err
	}
	e.errMu.Unlock()
	if !errors.Is(err, ErrRemoved) {
		e.log.Error("engine stopping", "err", err)
	}
	go e.Stop()
}

// Stop shuts the node down: it stops taking proposals, fails those in
// flight with ErrStopped, lets the log writer and the apply loop finish the
// batch they hold (nothing is half-written: each batch is one atomic
// write), closes the transport and storage and releases the data directory.
// It is safe to call more than once and from many goroutines, but not from
// a Reporter's Report method: Stop waits for the reporter to drain.
func (e *Engine) Stop() error {
	var err error
	e.stopOnce.Do(func() {
		close(e.stopc)
		e.wg.Wait()
		e.waiters.failAll(ErrStopped)
		err = e.tr.Close()
		// Everything written is synced (nothing unflushed under MemFirst),
		// and the next start knows this was no crash.
		if serr := e.store.MarkClean(); err == nil {
			err = serr
		}
		if su, ok := e.sm.(StorageUser); ok {
			su.ReleaseStorage()
		}
		if serr := e.store.Close(); err == nil {
			err = serr
		}
		e.ev.stop()
		close(e.donec)
	})
	<-e.donec
	return err
}

func (e *Engine) stopping() bool {
	select {
	case <-e.stopc:
		return true
	default:
		return false
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// handler receives what the transport brings.
type handler struct{ e *Engine }

func (h handler) Deliver(m *raftpb.Message)   { h.e.inbox.push(inboxItem{msg: m}) }
func (h handler) ReportUnreachable(id uint64) { h.e.inbox.push(inboxItem{unreachable: id}) }
func (h handler) ReportSnapshot(id uint64, ok bool) {
	h.e.inbox.push(inboxItem{snapshotTo: id, snapshotOK: ok})
}

// PeerState records the connection's state for Status and reports a change
// as an event. Raft itself needs nothing: it hears of lost messages through
// ReportUnreachable.
func (h handler) PeerState(id uint64, c transport.Class, up bool) {
	h.e.conns.report(h.e.ev, id, c, up)
}

// SnapshotTransferred reports a snapshot transfer as an event.
func (h handler) SnapshotTransferred(x transport.SnapshotTransfer) {
	e := h.e
	if !e.ev.enabled() {
		return
	}
	t := EventSnapshotSent
	if x.Received {
		t = EventSnapshotReceived
	}
	e.ev.emit(Event{Type: t, Peer: x.Peer, Index: x.Index, Term: x.Term, Bytes: x.Bytes, Duration: x.Duration})
}

// inboxItem is one thing for the raft loop to step: a message, or a report.
type inboxItem struct {
	msg         *raftpb.Message
	unreachable uint64
	snapshotTo  uint64
	snapshotOK  bool
}

// leaderWatch lets goroutines wait for a leader change.
type leaderWatch struct {
	mu      sync.Mutex
	leader  uint64
	term    uint64
	changed chan struct{}
}

func (w *leaderWatch) init() { w.changed = make(chan struct{}) }

func (w *leaderWatch) set(leader, term uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.leader == leader && w.term == term {
		return
	}
	w.leader, w.term = leader, term
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *leaderWatch) get() (leader, term uint64, changed <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.leader, w.term, w.changed
}

// raftLogger sends the raft library's logs to slog. Its Info level is
// chatty (every election); the engine reports those as events instead.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)              { r.l.Debug(fmt.Sprint(v...), "component", "raft") }
func (r raftLogger) Debugf(f string, v ...any)   { r.l.Debug(fmt.Sprintf(f, v...), "component", "raft") }
func (r raftLogger) Info(v ...any)               { r.l.Debug(fmt.Sprint(v...), "component", "raft") }
func (r raftLogger) Infof(f string, v ...any)    { r.l.Debug(fmt.Sprintf(f, v...), "component", "raft") }
func (r raftLogger) Warning(v ...any)            { r.l.Warn(fmt.Sprint(v...), "component", "raft") }
func (r raftLogger) Warningf(f string, v ...any) { r.l.Warn(fmt.Sprintf(f, v...), "component", "raft") }
func (r raftLogger) Error(v ...any)              { r.l.Error(fmt.Sprint(v...), "component", "raft") }
func (r raftLogger) Errorf(f string, v ...any)   { r.l.Error(fmt.Sprintf(f, v...), "component", "raft") }
func (r raftLogger) Fatal(v ...any)              { panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }
func (r raftLogger) Panic(v ...any)              { panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }
