// Package transporttest holds what the tests of the transports (grpcnet,
// memnet) share. Only tests import it.
package transporttest

import (
	"sync"

	"github.com/cairn-db/cairn/transport"
)

// PeerState is one Handler.PeerState call.
type PeerState struct {
	Peer  uint64
	Class transport.Class
	Up    bool
}

// Observer records the Handler calls that are for observation only,
// PeerState and SnapshotTransferred. A test's Handler embeds it to have
// those two methods. Its methods may be called concurrently.
type Observer struct {
	mu        sync.Mutex
	states    []PeerState
	transfers []transport.SnapshotTransfer
}

// PeerState records a Handler.PeerState call.
func (o *Observer) PeerState(id uint64, c transport.Class, up bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.states = append(o.states, PeerState{id, c, up})
}

// SnapshotTransferred records a Handler.SnapshotTransferred call.
func (o *Observer) SnapshotTransferred(x transport.SnapshotTransfer) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.transfers = append(o.transfers, x)
}

// PeerStates returns the PeerState calls so far, in order.
func (o *Observer) PeerStates() []PeerState {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]PeerState(nil), o.states...)
}

// SnapshotTransfers returns the SnapshotTransferred calls so far, in order.
func (o *Observer) SnapshotTransfers() []transport.SnapshotTransfer {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]transport.SnapshotTransfer(nil), o.transfers...)
}
