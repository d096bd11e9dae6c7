package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/confchange"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"
)

// Membership errors.
var (
	ErrIDReused      = errors.New("engine: node id was used by a removed member and is never reused")
	ErrMemberExists  = errors.New("engine: node is already a member")
	ErrUnknownMember = errors.New("engine: no such member")
	ErrNotLearner    = errors.New("engine: node is not a learner")
	ErrNoAddress     = errors.New("engine: a new member needs a peer address")
	// ErrInvalidChange: raft cannot apply the change to the current
	// configuration (it would remove every voter, it is a second change
	// while a joint configuration is in progress, ...).
	ErrInvalidChange = errors.New("engine: invalid membership change")
)

// raftAccepts reports whether raft can apply cc on top of cs. raft panics on
// a committed change it cannot apply, so a change it would refuse must never
// reach ApplyConfChange: it is refused at proposal time and, should one
// commit anyway (two nodes proposing at once), skipped at apply time on
// every node alike.
func raftAccepts(cs *raftpb.ConfState, cc *raftpb.ConfChangeV2) error {
	chg := confchange.Changer{Tracker: tracker.MakeProgressTracker(1, 0), LastIndex: 1}
	cfg, trk, err := confchange.Restore(chg, cs)
	if err != nil {
		return fmt.Errorf("%w: current configuration: %v", ErrInvalidChange, err)
	}
	chg.Tracker.Config, chg.Tracker.Progress = cfg, trk
	switch autoLeave, enter := cc.EnterJoint(); {
	case cc.LeaveJoint():
		_, _, err = chg.LeaveJoint()
	case enter:
		_, _, err = chg.EnterJoint(autoLeave, cc.GetChanges()...)
	default:
		_, _, err = chg.Simple(cc.GetChanges()...)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidChange, err)
	}
	return nil
}

// ChangeType is one kind of membership change.
type ChangeType int

const (
	AddVoter ChangeType = iota
	AddLearner
	PromoteLearner
	RemoveNode
	// UpdateAddr changes the peer address of a member (etcd's MemberUpdate).
	// It travels through raft as a ConfChangeUpdateNode, which leaves raft's
	// configuration as it is; every node then sends to the new address. A
	// node whose own address changes must be restarted listening there.
	UpdateAddr
)

// Change is one membership change: add a voter or learner at Addr, promote
// a learner, remove a node, or move a member to the peer address Addr.
type Change struct {
	Type ChangeType
	ID   uint64
	Addr string
}

// membership is the cluster's members and their peer addresses, as of the
// last applied entry. The apply loop writes it; others read it under mu.
type membership struct {
	mu       sync.Mutex
	addrs    map[uint64]string // every member, voter or learner
	learners map[uint64]bool
	removed  map[uint64]bool // ids never to be used again
	conf     *raftpb.ConfState
	changedc chan struct{} // closed and replaced on every applied change
}

func newMembership() membership {
	return membership{
		addrs: map[uint64]string{}, learners: map[uint64]bool{}, removed: map[uint64]bool{},
		conf: &raftpb.ConfState{}, changedc: make(chan struct{}),
	}
}

// setConf records the configuration raft applied and wakes waiters.
func (m *membership) setConf(cs *raftpb.ConfState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.conf = proto.CloneOf(cs)
	close(m.changedc)
	m.changedc = make(chan struct{})
}

func (m *membership) changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changedc
}

func (m *membership) confState() *raftpb.ConfState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conf
}

// snapshotMembers is how membership travels in a snapshot's context.
type snapshotMembers struct {
	Addrs    map[uint64]string `json:"addrs"`
	Learners []uint64          `json:"learners,omitempty"`
	Removed  []uint64          `json:"removed,omitempty"`
}

func (m *membership) encode() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, _ := json.Marshal(snapshotMembers{
		Addrs:    m.addrs,
		Learners: slices.Sorted(maps.Keys(m.learners)),
		Removed:  slices.Sorted(maps.Keys(m.removed)),
	})
	return b
}

// confContext rides in a ConfChange's context: who proposed it (so the
// proposer's waiter is found) and the addresses of the nodes it adds.
type confContext struct {
	Node  uint64            `json:"n,omitempty"`
	Seq   uint64            `json:"s,omitempty"`
	Addrs map[uint64]string `json:"a,omitempty"`
}

func encodeConfContext(c confContext) []byte {
	b, _ := json.Marshal(c)
	return b
}

// validate checks changes against the current membership. Strict mode (at
// proposal time) also refuses no-op additions; at apply time those are
// accepted, since bootstrap entries re-add the initial members.
func (m *membership) validate(changes []Change, strict bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range changes {
		if c.ID == 0 {
			return fmt.Errorf("%w: node id 0", ErrUnknownMember)
		}
		_, member := m.addrs[c.ID]
		switch c.Type {
		case AddVoter, AddLearner:
			if m.removed[c.ID] {
				return fmt.Errorf("%w: node %d", ErrIDReused, c.ID)
			}
			if member && (strict || m.addrs[c.ID] != c.Addr && c.Addr != "") {
				return fmt.Errorf("%w: node %d at %s", ErrMemberExists, c.ID, m.addrs[c.ID])
			}
			if !member && c.Addr == "" {
				return fmt.Errorf("%w: node %d", ErrNoAddress, c.ID)
			}
		case PromoteLearner:
			if !member {
				return fmt.Errorf("%w: node %d", ErrUnknownMember, c.ID)
			}
			if !m.learners[c.ID] && strict {
				return fmt.Errorf("%w: node %d", ErrNotLearner, c.ID)
			}
		case RemoveNode:
			if !member {
				return fmt.Errorf("%w: node %d", ErrUnknownMember, c.ID)
			}
		case UpdateAddr:
			if !member {
				return fmt.Errorf("%w: node %d", ErrUnknownMember, c.ID)
			}
			if c.Addr == "" {
				return fmt.Errorf("%w: node %d", ErrNoAddress, c.ID)
			}
		default:
			return fmt.Errorf("%w: unknown change type %d for node %d", ErrInvalidChange, c.Type, c.ID)
		}
	}
	return nil
}

// changesOf translates a raft configuration change into Changes.
func (m *membership) changesOf(cc *raftpb.ConfChangeV2, ctx confContext) []Change {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Change, 0, len(cc.GetChanges()))
	for _, s := range cc.GetChanges() {
		id := s.GetNodeId()
		c := Change{ID: id, Addr: ctx.Addrs[id]}
		switch s.GetType() {
		case raftpb.ConfChangeAddNode:
			c.Type = AddVoter
			if m.learners[id] {
				c.Type = PromoteLearner
			}
		case raftpb.ConfChangeAddLearnerNode:
			c.Type = AddLearner
		case raftpb.ConfChangeRemoveNode:
			c.Type = RemoveNode
		case raftpb.ConfChangeUpdateNode:
			c.Type = UpdateAddr
		default:
			continue
		}
		out = append(out, c)
	}
	return out
}

// apply records the additions and promotions of changes, then drops every
// member that cs, the configuration raft now has, no longer holds: during a
// joint change a removed voter keeps its address until the joint
// configuration is left. It returns the ids dropped.
func (m *membership) apply(changes []Change, cs *raftpb.ConfState) (dropped []uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range changes {
		switch c.Type {
		case AddVoter, AddLearner:
			if c.Addr != "" {
				m.addrs[c.ID] = c.Addr
			}
			if c.Type == AddLearner {
				m.learners[c.ID] = true
			} else {
				delete(m.learners, c.ID)
			}
		case PromoteLearner:
			delete(m.learners, c.ID)
		case UpdateAddr:
			m.addrs[c.ID] = c.Addr
		}
	}
	for id := range m.addrs {
		if !inConf(cs, id) {
			delete(m.addrs, id)
			delete(m.learners, id)
			m.removed[id] = true
			dropped = append(dropped, id)
		}
	}
	return dropped
}

func (m *membership) isRemoved(id uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.removed[id]
}

// Members returns the current members and their peer addresses.
func (e *Engine) Members() map[uint64]string {
	e.members.mu.Lock()
	defer e.members.mu.Unlock()
	return maps.Clone(e.members.addrs)
}

// Member is one member of the cluster as this node last applied it.
type Member struct {
	ID      uint64
	Addr    string // peer address
	Learner bool
}

// Membership returns the current members, by id. The caller owns the slice.
func (e *Engine) Membership() []Member {
	m := &e.members
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.addrs))
	for _, id := range slices.Sorted(maps.Keys(m.addrs)) {
		out = append(out, Member{ID: id, Addr: m.addrs[id], Learner: m.learners[id]})
	}
	return out
}

func (e *Engine) restoreMembership(ctx []byte) error {
	var sm snapshotMembers
	if err := json.Unmarshal(ctx, &sm); err != nil {
		return fmt.Errorf("engine: snapshot membership: %w", err)
	}
	m := &e.members
	m.mu.Lock()
	old := m.addrs
	m.addrs = sm.Addrs
	if m.addrs == nil {
		m.addrs = map[uint64]string{}
	}
	m.learners = map[uint64]bool{}
	for _, id := range sm.Learners {
		m.learners[id] = true
	}
	m.removed = map[uint64]bool{}
	for _, id := range sm.Removed {
		m.removed[id] = true
	}
	addrs := maps.Clone(m.addrs)
	m.mu.Unlock()
	if e.tr == nil {
		return nil // at start, before the transport exists; open adds the peers
	}
	for id := range old {
		if _, ok := addrs[id]; !ok && id != e.id {
			e.tr.RemovePeer(id)
			e.conns.forget(id)
		}
	}
	for id, addr := range addrs {
		if id != e.id {
			e.tr.AddPeer(id, addr)
		}
	}
	return nil
}

// applyConfChange applies a committed configuration change: to raft, to the
// membership, to the transport. A change that is invalid for the current
// membership (decided identically on every node) is applied as a no-op and
// its proposer gets the error.
func (e *Engine) applyConfChange(ent *raftpb.Entry) error {
	var cc raftpb.ConfChangeI
	var v2 *raftpb.ConfChangeV2
	if ent.GetType() == raftpb.EntryConfChange {
		v1 := &raftpb.ConfChange{}
		if err := proto.Unmarshal(ent.GetData(), v1); err != nil {
			return fmt.Errorf("engine: entry %d: decode conf change: %w", ent.GetIndex(), err)
		}
		cc, v2 = v1, v1.AsV2()
	} else {
		v2 = &raftpb.ConfChangeV2{}
		if err := proto.Unmarshal(ent.GetData(), v2); err != nil {
			return fmt.Errorf("engine: entry %d: decode conf change: %w", ent.GetIndex(), err)
		}
		cc = v2
	}
	var ctx confContext
	if len(v2.GetContext()) > 0 {
		if err := json.Unmarshal(v2.GetContext(), &ctx); err != nil {
			return fmt.Errorf("engine: entry %d: decode conf change context: %w", ent.GetIndex(), err)
		}
	}
	changes := e.members.changesOf(v2, ctx)
	verr := e.members.validate(changes, false)
	if verr == nil {
		verr = raftAccepts(e.as.confState, v2)
	}
	if verr != nil {
		// Refused identically on every node; raft is not told (its contract
		// for a rejected change), and the proposer gets the reason.
		e.log.Warn("membership change refused", "index", ent.GetIndex(), "err", verr)
		if ctx.Node == e.id && ctx.Seq != 0 {
			e.waiters.resolve(ctx.Seq, result{err: verr})
		}
		return nil
	}
	wasMember := inConf(e.as.confState, e.id)
	var cs *raftpb.ConfState
	if err := e.withRaft(func(rn *raft.RawNode) { cs = rn.ApplyConfChange(cc); e.dropLease() }); err != nil {
		return err
	}
	e.as.confState = cs
	for _, id := range e.members.apply(changes, cs) {
		if id != e.id {
			e.tr.RemovePeer(id)
			e.conns.forget(id)
		}
	}
	for _, c := range changes {
		if c.ID != e.id && c.Addr != "" && c.Type != RemoveNode {
			e.tr.AddPeer(c.ID, c.Addr)
		}
	}
	if e.ev.enabled() {
		e.ev.emit(Event{Type: EventMembershipChanged, Index: ent.GetIndex(),
			Voters: slices.Clone(cs.GetVoters()), Learners: slices.Clone(cs.GetLearners())})
	}
	e.members.setConf(cs)
	if ctx.Node == e.id && ctx.Seq != 0 {
		e.waiters.resolve(ctx.Seq, result{})
	}
	// A joining node replays changes from before it was added: only a
	// change that takes this node out of the configuration removes it.
	if wasMember && !inConf(cs, e.id) {
		e.scheduleRemoval()
	}
	return nil
}

func inConf(cs *raftpb.ConfState, id uint64) bool {
	return slices.Contains(cs.GetVoters(), id) || slices.Contains(cs.GetLearners(), id) ||
		slices.Contains(cs.GetVotersOutgoing(), id) || slices.Contains(cs.GetLearnersNext(), id)
}

// scheduleRemoval stops a node that was removed, after a grace period in
// which it can still tell the others that the change committed.
func (e *Engine) scheduleRemoval() {
	grace := 2 * time.Duration(e.cfg.Raft.ElectionTick) * e.cfg.Raft.Tick()
	e.log.Info("this node was removed from the cluster; stopping", "after", grace)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		select {
		case <-time.After(grace):
			e.fail(ErrRemoved)
		case <-e.stopc:
		}
	}()
}

// AddVoter adds a voting member reachable at addr and waits until the change
// is applied here.
func (e *Engine) AddVoter(ctx context.Context, id uint64, addr string) error {
	return e.ChangeMembership(ctx, Change{Type: AddVoter, ID: id, Addr: addr})
}

// AddLearner adds a non-voting member that receives the log.
func (e *Engine) AddLearner(ctx context.Context, id uint64, addr string) error {
	return e.ChangeMembership(ctx, Change{Type: AddLearner, ID: id, Addr: addr})
}

// PromoteLearner makes a learner a voter.
func (e *Engine) PromoteLearner(ctx context.Context, id uint64) error {
	return e.ChangeMembership(ctx, Change{Type: PromoteLearner, ID: id})
}

// RemoveNode removes a member, the leader included (it steps down).
func (e *Engine) RemoveNode(ctx context.Context, id uint64) error {
	return e.ChangeMembership(ctx, Change{Type: RemoveNode, ID: id})
}

// UpdateAddr moves member id to peer address addr (see the UpdateAddr
// change type) and waits until the change is applied here.
func (e *Engine) UpdateAddr(ctx context.Context, id uint64, addr string) error {
	return e.ChangeMembership(ctx, Change{Type: UpdateAddr, ID: id, Addr: addr})
}

// ChangeMembership applies changes as one configuration change. Several
// changes go through joint consensus (ConfChangeV2): the cluster first
// moves to the joint configuration, then leaves it automatically; the call
// returns once this node has applied the final configuration.
func (e *Engine) ChangeMembership(ctx context.Context, changes ...Change) error {
	if len(changes) == 0 {
		return nil
	}
	// One change at a time from this node: raft silently drops a second
	// change proposed while one is pending, and its caller would wait for
	// nothing.
	e.confMu.Lock()
	defer e.confMu.Unlock()
	if err := e.members.validate(changes, true); err != nil {
		return err
	}
	cc := raftpb.ConfChangeV2{}
	addrs := map[uint64]string{}
	for _, c := range changes {
		t := raftpb.ConfChangeAddNode
		switch c.Type {
		case AddLearner:
			t = raftpb.ConfChangeAddLearnerNode
		case RemoveNode:
			t = raftpb.ConfChangeRemoveNode
		case UpdateAddr:
			t = raftpb.ConfChangeUpdateNode
		}
		if c.Addr != "" {
			addrs[c.ID] = c.Addr
		}
		cc.Changes = append(cc.Changes, &raftpb.ConfChangeSingle{Type: t.Enum(), NodeId: new(c.ID)})
	}
	if len(changes) > 1 {
		// Joint consensus, left automatically once entered.
		cc.Transition = raftpb.ConfChangeTransitionJointImplicit.Enum()
	}
	if err := raftAccepts(e.members.confState(), &cc); err != nil {
		return err
	}
	seq := e.seq.Add(1)
	cc.Context = encodeConfContext(confContext{Node: e.id, Seq: seq, Addrs: addrs})
	ch := e.waiters.register(seq)
	var perr error
	if err := e.withRaft(func(rn *raft.RawNode) { perr = rn.ProposeConfChange(&cc) }); err != nil {
		e.waiters.cancel(seq)
		return err
	}
	if perr != nil {
		e.waiters.cancel(seq)
		return fmt.Errorf("%w: %v", ErrProposalDropped, perr)
	}
	if _, err := e.wait(ctx, seq, ch); err != nil {
		return err
	}
	return e.waitNotJoint(ctx)
}

// waitNotJoint waits until the applied configuration is not a joint one.
func (e *Engine) waitNotJoint(ctx context.Context) error {
	for {
		ch := e.members.changed()
		if len(e.members.confState().GetVotersOutgoing()) == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting to leave the joint configuration: %w", ErrProposalTimeout, ctx.Err())
		case <-e.donec:
			return ErrStopped
		}
	}
}

// TransferLeadership asks the leader to hand leadership to node to, and
// waits until this node sees to as leader.
func (e *Engine) TransferLeadership(ctx context.Context, to uint64) error {
	if _, ok := e.Members()[to]; !ok {
		return fmt.Errorf("%w: node %d", ErrUnknownMember, to)
	}
	for {
		leader, _, changed := e.leader.get()
		if leader == to {
			return nil
		}
		if err := e.withRaft(func(rn *raft.RawNode) { rn.TransferLeader(to) }); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-time.After(time.Duration(e.cfg.Raft.ElectionTick) * e.cfg.Raft.Tick()):
		case <-ctx.Done():
			return fmt.Errorf("engine: leadership transfer to %d: %w", to, ctx.Err())
		case <-e.donec:
			return ErrStopped
		}
	}
}
