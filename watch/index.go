package watch

import "bytes"

// group is the synced watchers of one key or one range. Grouping makes
// matching cost per distinct key or range, not per watcher, and lets the
// watchers of a group with the same flags share the responses Notify builds.
type group struct {
	rng      keyRange
	watchers []*Watcher // each with grp == this group and idx its position
	// pending collects the events of the slice Notify is dispatching that
	// match rng; empty between dispatches.
	pending []item
	node    *rangeNode // nil for a single key
}

// index finds the synced watchers an event's key matches: single keys in a
// map, ranges in an interval treap. It is guarded by the hub's lock.
type index struct {
	single map[string]*group
	ranges map[string]*group // by keyRange.id
	root   *rangeNode
	seed   uint64 // treap priorities
}

func newIndex() index {
	return index{single: map[string]*group{}, ranges: map[string]*group{}}
}

func (x *index) add(w *Watcher) {
	var g *group
	if w.rng.single() {
		if g = x.single[string(w.rng.key)]; g == nil {
			g = &group{rng: w.rng}
			x.single[string(w.rng.key)] = g
		}
	} else {
		id := w.rng.id()
		if g = x.ranges[id]; g == nil {
			x.seed += 0x9e3779b97f4a7c15
			g = &group{rng: w.rng}
			g.node = &rangeNode{grp: g, prio: mix64(x.seed)}
			x.ranges[id] = g
			x.root = x.root.insert(g.node)
		}
	}
	w.grp, w.idx = g, len(g.watchers)
	g.watchers = append(g.watchers, w)
}

func (x *index) remove(w *Watcher) {
	g := w.grp
	last := len(g.watchers) - 1
	g.watchers[w.idx] = g.watchers[last]
	g.watchers[w.idx].idx = w.idx
	g.watchers[last] = nil
	g.watchers = g.watchers[:last]
	w.grp, w.idx = nil, 0
	if len(g.watchers) > 0 {
		return
	}
	if g.node == nil {
		delete(x.single, string(g.rng.key))
	} else {
		delete(x.ranges, g.rng.id())
		x.root = x.root.remove(g.node)
	}
}

// match appends to buf the groups whose key or range contains key.
func (x *index) match(key []byte, buf []*group) []*group {
	if g := x.single[string(key)]; g != nil {
		buf = append(buf, g)
	}
	if x.root != nil {
		buf = x.root.stab(key, buf)
	}
	return buf
}

// rangeNode is a node of a treap of distinct ranges ordered by (key, end),
// each node augmented with the greatest end in its subtree so a stabbing
// query skips subtrees that end before the key: O(log n + matches).
type rangeNode struct {
	grp         *group
	prio        uint64
	left, right *rangeNode
	maxEnd      []byte // nil with maxInf
	maxInf      bool
}

// endLess orders range ends, an infinite end last.
func endLess(a []byte, aInf bool, b []byte, bInf bool) bool {
	if aInf || bInf {
		return !aInf && bInf
	}
	return bytes.Compare(a, b) < 0
}

func (n *rangeNode) less(o *rangeNode) bool {
	a, b := n.grp.rng, o.grp.rng
	if c := bytes.Compare(a.key, b.key); c != 0 {
		return c < 0
	}
	return endLess(a.end, a.fromKey, b.end, b.fromKey)
}

func (n *rangeNode) fix() {
	n.maxEnd, n.maxInf = n.grp.rng.end, n.grp.rng.fromKey
	for _, c := range [2]*rangeNode{n.left, n.right} {
		if c != nil && endLess(n.maxEnd, n.maxInf, c.maxEnd, c.maxInf) {
			n.maxEnd, n.maxInf = c.maxEnd, c.maxInf
		}
	}
}

func (n *rangeNode) insert(nn *rangeNode) *rangeNode {
	if n == nil {
		nn.left, nn.right = nil, nil
		nn.fix()
		return nn
	}
	if nn.less(n) {
		n.left = n.left.insert(nn)
		if n.left.prio > n.prio {
			return n.rotateRight()
		}
	} else {
		n.right = n.right.insert(nn)
		if n.right.prio > n.prio {
			return n.rotateLeft()
		}
	}
	n.fix()
	return n
}

func (n *rangeNode) rotateRight() *rangeNode {
	l := n.left
	n.left, l.right = l.right, n
	n.fix()
	l.fix()
	return l
}

func (n *rangeNode) rotateLeft() *rangeNode {
	r := n.right
	n.right, r.left = r.left, n
	n.fix()
	r.fix()
	return r
}

func (n *rangeNode) remove(t *rangeNode) *rangeNode {
	if n == nil {
		return nil
	}
	if n == t {
		return merge(n.left, n.right)
	}
	if t.less(n) {
		n.left = n.left.remove(t)
	} else {
		n.right = n.right.remove(t)
	}
	n.fix()
	return n
}

func merge(a, b *rangeNode) *rangeNode {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio > b.prio:
		a.right = merge(a.right, b)
		a.fix()
		return a
	default:
		b.left = merge(a, b.left)
		b.fix()
		return b
	}
}

// stab appends the groups of every range in n's subtree that contains key.
func (n *rangeNode) stab(key []byte, buf []*group) []*group {
	for n != nil {
		if !n.maxInf && bytes.Compare(key, n.maxEnd) >= 0 {
			return buf // every range below ends at or before key
		}
		buf = n.left.stab(key, buf)
		if bytes.Compare(key, n.grp.rng.key) < 0 {
			return buf // n and its right subtree start after key
		}
		if n.grp.rng.contains(key) {
			buf = append(buf, n.grp)
		}
		n = n.right
	}
	return buf
}

// mix64 is splitmix64's finalizer: well-spread treap priorities from a counter.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
