package memnet

// link is one direction between two nodes.
type link struct{ from, to uint64 }

// cuts records which links do not exist. Partitions, isolations and blocks
// are kept apart so that each can be changed without recomputing the others,
// and so that Partition replaces only the previous partition.
type cuts struct {
	group    map[uint64]int // partition group of each listed node; nil when not partitioned
	isolated map[uint64]bool
	blocked  map[link]bool
}

// cut reports whether messages from one node to another are lost. A node
// can always reach itself: raft never sends to itself over a transport, and
// a partition that cut a node from itself would mean nothing.
func (c *cuts) cut(from, to uint64) bool {
	if from == to {
		return false
	}
	if c.isolated[from] || c.isolated[to] || c.blocked[link{from, to}] {
		return true
	}
	// Unlisted nodes are all in group 0, the "one more group".
	return c.group != nil && c.group[from] != c.group[to]
}

// Partition splits the cluster: nodes in different groups cannot exchange
// messages, and the nodes not listed form one more group together. It
// replaces any earlier partition and leaves isolations and blocks in place;
// Partition() with no groups removes the partition. A node listed in several
// groups belongs to the last one.
func (n *Network) Partition(groups ...[]uint64) {
	var g map[uint64]int
	if len(groups) > 0 {
		g = make(map[uint64]int)
		for i, ids := range groups {
			for _, id := range ids {
				g[id] = i + 1
			}
		}
	}
	n.changeCuts(func(c *cuts) { c.group = g })
}

// Isolate cuts id off from every other node in both directions, until Heal.
func (n *Network) Isolate(id uint64) {
	n.changeCuts(func(c *cuts) {
		if c.isolated == nil {
			c.isolated = make(map[uint64]bool)
		}
		c.isolated[id] = true
	})
}

// Block cuts the link from one node to another in that direction only, until
// Heal: the asymmetric failures (a node that hears the leader but cannot
// answer) that PreVote and CheckQuorum exist for.
func (n *Network) Block(from, to uint64) {
	n.changeCuts(func(c *cuts) {
		if c.blocked == nil {
			c.blocked = make(map[link]bool)
		}
		c.blocked[link{from, to}] = true
	})
}

// Heal removes the partition, every isolation and every block. Link faults
// set by SetFaults and SetLinkFaults stay: they model a bad network, not a
// broken one.
func (n *Network) Heal() {
	n.changeCuts(func(c *cuts) { *c = cuts{} })
}

// changeCuts applies change to the cuts and tells every running endpoint
// whose link to a peer it knows was cut or restored: Handler.PeerState, for
// every class, as a real transport reports its connections. A link is the
// sender's: Block(from, to) is reported to from only.
func (n *Network) changeCuts(change func(*cuts)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	type state struct {
		l   link
		cut bool
	}
	var before []state
	for from := range n.mu.nodes {
		for to := range n.mu.nodes {
			if from != to {
				before = append(before, state{link{from, to}, n.mu.cuts.cut(from, to)})
			}
		}
	}
	change(&n.mu.cuts)
	for _, s := range before {
		if now := n.mu.cuts.cut(s.l.from, s.l.to); now != s.cut {
			t := n.mu.nodes[s.l.from]
			if _, ok := t.peerAddr(s.l.to); ok {
				t.reports.peerState(s.l.to, !now)
			}
		}
	}
}

// reportCuts tells endpoint t, which just started, of its links to the
// peers it knows that are cut now.
func (n *Network) reportCuts(t *Transport) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.nodes[t.id] != t {
		return
	}
	for to := range n.mu.nodes {
		if to == t.id || !n.mu.cuts.cut(t.id, to) {
			continue
		}
		if _, ok := t.peerAddr(to); ok {
			t.reports.peerState(to, false)
		}
	}
}

// Cut reports whether a message sent now from one node to another would be
// lost to a partition, an isolation or a block.
func (n *Network) Cut(from, to uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.cuts.cut(from, to)
}
